#include "ui/MainWindow.h"

#include "core/EngineInfo.h"
#include "core/demo/DemoFiles.h"
#include "ui/CreatePage.h"
#include "ui/MergePage.h"
#include "ui/RunsPage.h"
#include "ui/Settings.h"
#include "ui/SettingsDialog.h"
#include "ui/TrainPage.h"

#include <QAction>
#include <QCloseEvent>
#include <QLabel>
#include <QMenuBar>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>

#include <exception>

namespace studio::ui {

namespace {

const QString kGeometryKey = QStringLiteral("window/geometry");
const QString kStateKey = QStringLiteral("window/state");
const QString kTabKey = QStringLiteral("window/tab");

} // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent)
{
    setupUi();
    const bool firstLaunch = !QSettings().contains(kTabKey);
    restoreLayout();

    // The Train page would start empty, and a fresh machine has no model to fill it with: the
    // demo run makes the first press of Start mean something. The page is shown only on a
    // first launch; later the remembered page stays.
    if (openDemoRun() && firstLaunch) {
        m_tabs->setCurrentWidget(m_trainPage);
    }
}

bool MainWindow::openDemoRun()
{
    if (m_trainPage->isTraining()) {
        statusBar()->showMessage(tr("A run is training; stop it before opening the demo."));
        return false;
    }
    const QString folder = demo::locateDemoFolder();
    if (folder.isEmpty()) {
        statusBar()->showMessage(tr("No demo found: set HNSTUDIO_DEMO_DIR to its folder."));
        return false;
    }
    try {
        m_trainPage->setRunConfig(demo::demoRunConfig(folder, Settings::load().outputFolder));
    } catch (const std::exception& error) { // studio::Error and anything else LibTorch throws
        statusBar()->showMessage(
            tr("The demo run did not open: %1").arg(QString::fromUtf8(error.what())));
        return false;
    }
    statusBar()->showMessage(
        tr("The demo run is ready on the Train page: press Start to teach it the ink style."));
    return true;
}

void MainWindow::setupUi()
{
    const EngineInfo info = engineInfo();
    setWindowTitle(tr("Hypernet Studio %1").arg(info.studioVersion));
    resize(1280, 820);

    m_tabs = new QTabWidget(this);
    m_tabs->setObjectName(QStringLiteral("pageTabs"));
    m_createPage = new CreatePage(m_tabs);
    m_trainPage = new TrainPage(m_tabs);
    m_mergePage = new MergePage(m_tabs);
    m_runsPage = new RunsPage(m_tabs);
    m_tabs->addTab(m_createPage, tr("&Create"));
    m_tabs->addTab(m_trainPage, tr("&Train"));
    m_tabs->addTab(m_mergePage, tr("&Merge"));
    m_tabs->addTab(m_runsPage, tr("&Runs"));
    setCentralWidget(m_tabs);
    connectPages();
    setupMenus();

    m_engineLabel = new QLabel(tr("LibTorch %1 on %2 (%3 CPU threads)")
                                   .arg(info.torchVersion, info.devices.join(QStringLiteral(", ")))
                                   .arg(info.cpuThreads),
                               this);
    m_engineLabel->setObjectName(QStringLiteral("engineLabel"));
    statusBar()->addPermanentWidget(m_engineLabel);
    statusBar()->showMessage(tr("Ready"));
}

void MainWindow::setupMenus()
{
    QMenu* file = menuBar()->addMenu(tr("&File"));
    QAction* settings = file->addAction(tr("&Settings…"), this, &MainWindow::openSettings);
    settings->setObjectName(QStringLiteral("settingsAction"));
    settings->setShortcut(QKeySequence::Preferences);
    settings->setMenuRole(QAction::PreferencesRole);
    QAction* demoRun = file->addAction(tr("Open the &demo run"), this, [this] {
        if (openDemoRun()) {
            m_tabs->setCurrentWidget(m_trainPage);
        }
    });
    demoRun->setObjectName(QStringLiteral("demoRunAction"));
    file->addSeparator();
    QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setObjectName(QStringLiteral("quitAction"));
    quit->setShortcut(QKeySequence::Quit);
    quit->setMenuRole(QAction::QuitRole);
}

void MainWindow::openSettings()
{
    SettingsDialog dialog(Settings::load(), this);
    if (dialog.exec() == QDialog::Accepted) {
        statusBar()->showMessage(tr("Settings saved"), 5000);
    }
}

void MainWindow::connectPages()
{
    // A hypernetwork just created is the one most likely to be trained next.
    connect(m_createPage, &CreatePage::hypernetworkCreated, m_trainPage,
            &TrainPage::useHypernetworkFile);
    connect(m_runsPage, &RunsPage::loadRunRequested, this, [this](const QString& path) {
        if (m_trainPage->openRunFile(path)) {
            m_tabs->setCurrentWidget(m_trainPage);
        }
    });
}

void MainWindow::restoreLayout()
{
    const QSettings settings;
    restoreGeometry(settings.value(kGeometryKey).toByteArray());
    restoreState(settings.value(kStateKey).toByteArray());
    m_tabs->setCurrentIndex(settings.value(kTabKey, 0).toInt());
}

void MainWindow::saveLayout() const
{
    QSettings settings;
    settings.setValue(kGeometryKey, saveGeometry());
    settings.setValue(kStateKey, saveState());
    settings.setValue(kTabKey, m_tabs->currentIndex());
}

void MainWindow::closeEvent(QCloseEvent* event)
{
    // The run saves the step it reached; closing never loses more than the step under way.
    if (m_trainPage->isTraining()) {
        m_trainPage->stopAndWait();
    }
    saveLayout();
    QMainWindow::closeEvent(event);
}

QString MainWindow::engineSummary() const
{
    return m_engineLabel->text();
}

} // namespace studio::ui
