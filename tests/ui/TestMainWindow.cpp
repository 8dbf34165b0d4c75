// The studio's main window opens offscreen, shows which engine it runs on, and a first launch
// puts the built-in demo run on the Train page.

#include "ui/MainWindow.h"

#include "core/EngineInfo.h"
#include "core/demo/DemoFiles.h"
#include "ui/MergePage.h"
#include "ui/RunForm.h"
#include "ui/Settings.h"
#include "ui/TrainPage.h"

#include <QAction>
#include <QDir>
#include <QLabel>
#include <QLineEdit>
#include <QObject>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTest>

using studio::ui::MainWindow;

class TestMainWindow : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testShowsEngineVersionAndDevice();
    void testFirstLaunchOpensTheDemoRun();
    void testLaterLaunchKeepsItsPage();
};

void TestMainWindow::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true); // the user's own settings stay untouched
    QCoreApplication::setOrganizationName(QStringLiteral("HypernetStudioTest"));
    QSettings().clear();
}

void TestMainWindow::testShowsEngineVersionAndDevice()
{
    MainWindow window;
    window.show();
    QVERIFY(QTest::qWaitForWindowExposed(&window));

    const studio::EngineInfo info = studio::engineInfo();
    QVERIFY(window.windowTitle().contains(info.studioVersion));
    const auto* label = window.findChild<QLabel*>(QStringLiteral("engineLabel"));
    QVERIFY(label != nullptr);
    QVERIFY(label->isVisible());
    QVERIFY(label->text().contains(info.torchVersion));
    QVERIFY(label->text().contains(QStringLiteral("cpu")));
    QCOMPARE(window.engineSummary(), label->text());
}

void TestMainWindow::testFirstLaunchOpensTheDemoRun()
{
    QSettings().clear();
    const QString demoFolder = studio::demo::locateDemoFolder();
    QVERIFY2(!demoFolder.isEmpty(), "resources/demo/demo-run.json not found");

    MainWindow window;
    window.show();
    QVERIFY(QTest::qWaitForWindowExposed(&window));
    QCOMPARE(window.tabs()->currentWidget(), static_cast<QWidget*>(window.trainPage()));
    QVERIFY(window.findChild<QAction*>(QStringLiteral("demoRunAction")) != nullptr);

    studio::ui::RunForm* form = window.trainPage()->form();
    QTRY_VERIFY_WITH_TIMEOUT(form->datasetImageCount() > 0, 20000);
    const studio::ui::FormReading reading = form->read();
    QVERIFY2(reading.config.has_value(), qPrintable(reading.problem));
    QCOMPARE(reading.config->model.checkpoint,
             QDir(demoFolder).filePath(QStringLiteral("demo.safetensors")));
    QCOMPARE(reading.config->output.folder,
             QDir(studio::ui::Settings::load().outputFolder).filePath(QStringLiteral("demo-run")));
    QCOMPARE(form->datasetImageCount(), int(QDir(reading.config->dataset.folder)
                                                .entryList({QStringLiteral("*.png")}, QDir::Files)
                                                .size()));
}

void TestMainWindow::testLaterLaunchKeepsItsPage()
{
    QSettings().clear();
    {
        MainWindow first;
        first.tabs()->setCurrentWidget(first.mergePage());
        first.close(); // saves the layout
    }

    MainWindow later;
    QCOMPARE(later.tabs()->currentWidget(), static_cast<QWidget*>(later.mergePage()));
    const QString demoFolder = studio::demo::locateDemoFolder();
    QVERIFY2(!demoFolder.isEmpty(), "resources/demo/demo-run.json not found");
    // The Train page still holds the demo run, ready for when the user goes there.
    const auto* checkpoint = qobject_cast<QLineEdit*>(
        later.trainPage()->form()->fieldWidget(QStringLiteral("model.checkpoint")));
    QVERIFY(checkpoint != nullptr);
    QCOMPARE(QDir::fromNativeSeparators(checkpoint->text()),
             QDir(demoFolder).filePath(QStringLiteral("demo.safetensors")));
}

QTEST_MAIN(TestMainWindow)
#include "TestMainWindow.moc"
