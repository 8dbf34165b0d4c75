// Takes the README's screenshots of every page: the studio as a first launch opens it, on the
// built-in demo (resources/demo): the demo run set up and trained, two of its saves merged and
// stacked, and the reopened run.
// Not a test; run it under Xvfb:
//
//     xvfb-run -s "-screen 0 1600x1000x24" build/tests/take_screenshots docs/screenshots

#include "core/demo/DemoFiles.h"
#include "ui/CreatePage.h"
#include "ui/MainWindow.h"
#include "ui/MergePage.h"
#include "ui/RunForm.h"
#include "ui/RunsPage.h"
#include "ui/Settings.h"
#include "ui/TrainPage.h"

#include <QApplication>
#include <QComboBox>
#include <QDeadlineTimer>
#include <QDir>
#include <QDoubleSpinBox>
#include <QLineEdit>
#include <QPixmap>
#include <QRegularExpression>
#include <QSettings>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QThread>

#include <cstdio>
#include <functional>
#include <map>

using namespace studio;

namespace {

// Runs the event loop until `done` holds; false after `seconds`.
bool waitFor(const std::function<bool()>& done, int seconds)
{
    const QDeadlineTimer deadline(seconds * 1000);
    while (!done()) {
        if (deadline.hasExpired()) {
            return false;
        }
        QCoreApplication::processEvents(QEventLoop::AllEvents, 50);
        QThread::msleep(10);
    }
    return true;
}

void settle(int milliseconds)
{
    waitFor([] { return false; }, 0);
    const QDeadlineTimer deadline(milliseconds);
    while (!deadline.hasExpired()) {
        QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    }
}

bool shoot(ui::MainWindow& window, QWidget* page, const QString& path)
{
    window.tabs()->setCurrentWidget(page);
    settle(400);
    const bool saved = window.grab().save(path);
    std::printf("%s %s\n", saved ? "wrote" : "FAILED", qPrintable(path));
    return saved;
}

// The demo run's saves (hypernetworks/NAME-STEP.pt), by step.
QStringList runSaves(const QString& runFolder)
{
    const QDir saves(QDir(runFolder).filePath(QStringLiteral("hypernetworks")));
    const QRegularExpression stepPattern(QStringLiteral("-(\\d+)\\.pt$"));
    std::map<int64_t, QString> byStep;
    for (const QString& name : saves.entryList({QStringLiteral("*.pt")}, QDir::Files)) {
        const QRegularExpressionMatch match = stepPattern.match(name);
        if (match.hasMatch()) {
            byStep[match.captured(1).toLongLong()] = saves.filePath(name);
        }
    }
    QStringList paths;
    for (const auto& [step, path] : byStep) {
        paths << path;
    }
    return paths;
}

// The merge page's preview fields: the demo run's own preview prompt and seed.
void setMergePreview(ui::MergePage* merge, const QString& prompt, int seed)
{
    merge->findChild<QLineEdit*>(QStringLiteral("promptEdit"))->setText(prompt);
    merge->findChild<QSpinBox*>(QStringLiteral("seedSpin"))->setValue(seed);
    auto* sampler = merge->findChild<QComboBox*>(QStringLiteral("samplerCombo"));
    sampler->setCurrentIndex(sampler->findData(QStringLiteral("ddim")));
    merge->findChild<QDoubleSpinBox*>(QStringLiteral("cfgSpin"))->setValue(5.0);
}

} // namespace

int main(int argc, char** argv)
{
    QApplication app(argc, argv);
    QStandardPaths::setTestModeEnabled(true); // the user's own settings stay untouched
    const QDir out(argc > 1 ? QString::fromLocal8Bit(argv[1]) : QStringLiteral("."));
    QDir().mkpath(out.path());
    QTemporaryDir temporary;
    const QDir work(temporary.path());
    const QString demoFolder = demo::locateDemoFolder();
    if (demoFolder.isEmpty()) {
        std::fprintf(stderr, "take_screenshots: no demo found (resources/demo)\n");
        return 1;
    }

    // The window opens the demo run, as on a first launch, writing into the temporary folder.
    QSettings().clear();
    ui::Settings settings = ui::Settings::load();
    settings.outputFolder = work.path();
    settings.save();
    ui::MainWindow window;
    window.resize(1440, 900);
    window.show();
    bool ok = shoot(window, window.createPage(), out.filePath(QStringLiteral("create.png")));

    ui::TrainPage* train = window.trainPage();
    ok = waitFor([train] { return train->form()->datasetImageCount() > 0; }, 60) && ok;
    ok = shoot(window, train, out.filePath(QStringLiteral("train-setup.png"))) && ok;
    ok = train->start() && ok;
    ok = waitFor([train] { return !train->isTraining(); }, 1200) && ok;
    ok = shoot(window, train, out.filePath(QStringLiteral("train.png"))) && ok;

    // Two saves of the run, early and final, merged and stacked on the demo model.
    const QString runFolder = work.filePath(QStringLiteral("demo-run"));
    const QStringList saves = runSaves(runFolder);
    ok = saves.size() >= 2 && ok;
    ui::MergePage* merge = window.mergePage();
    merge->addInputs({saves.front(), saves.back()});
    merge->setModel(QDir(demoFolder).filePath(QStringLiteral("demo.safetensors")), demoFolder);
    ok = waitFor([merge] { return !merge->isChecking(); }, 60) && ok;
    merge->setWeight(0, 0.5);
    merge->setWeight(1, 0.5);
    setMergePreview(merge, QStringLiteral("a purple star on a white background"), 7);
    bool previewed = false;
    QObject::connect(merge, &ui::MergePage::previewFinished, [&previewed] { previewed = true; });
    merge->startPreview();
    ok = waitFor([&previewed] { return previewed; }, 300) && ok;
    ok = shoot(window, merge, out.filePath(QStringLiteral("merge.png"))) && ok;

    ui::RunsPage* runs = window.runsPage();
    bool opened = false;
    QObject::connect(runs, &ui::RunsPage::runOpened, [&opened] { opened = true; });
    runs->setRunsFolder(work.path());
    runs->openRun(runFolder);
    ok = waitFor([&opened] { return opened; }, 60) && ok;
    ok = shoot(window, runs, out.filePath(QStringLiteral("runs.png"))) && ok;

    return ok ? 0 : 1;
}
