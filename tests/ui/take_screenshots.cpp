// Takes the README's screenshots of every page: the studio on the tiny reference model, with a
// generated dataset, a short cosine run with previews, a merge preview grid and the reopened run.
// Not a test; run it under Xvfb:
//
//     xvfb-run -s "-screen 0 1600x1000x24" build/tests/take_screenshots docs/screenshots

#include "support/TrainingFixture.h"

#include "core/hypernetwork/HypernetworkTools.h"
#include "ui/CreatePage.h"
#include "ui/MainWindow.h"
#include "ui/MergePage.h"
#include "ui/RunsPage.h"
#include "ui/TrainPage.h"

#include <QApplication>
#include <QDeadlineTimer>
#include <QDir>
#include <QJsonArray>
#include <QPixmap>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QThread>

#include <cstdio>
#include <functional>

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

QString writeRunFile(const QDir& work)
{
    const QString images = work.filePath(QStringLiteral("images"));
    test::writeImageFolder(images, test::squareImages(6), false);
    QJsonObject json = test::tinyRunJson(images, work.filePath(QStringLiteral("runs/tinyhn")));
    const QJsonObject cosine{{QStringLiteral("cycle_steps"), 20},
                             {QStringLiteral("warmup_steps"), 3},
                             {QStringLiteral("max_lr"), 2e-3},
                             {QStringLiteral("min_lr"), 1e-5},
                             {QStringLiteral("decay"), 0.7}};
    test::setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("schedule"),
                   QStringLiteral("cosine"));
    test::setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("cosine"),
                   cosine);
    test::setField(json, QStringLiteral("training"), QStringLiteral("steps"), 60);
    test::setField(json, QStringLiteral("output"), QStringLiteral("preview_every"), 15);
    test::setField(json, QStringLiteral("output"), QStringLiteral("save_every"), 20);
    test::setField(json, QStringLiteral("preview"), QStringLiteral("prompt"),
                   QStringLiteral("a red circle, art by tinyhn"));
    test::setField(json, QStringLiteral("preview"), QStringLiteral("steps"), 8);
    return test::writeJson(work.filePath(QStringLiteral("tinyhn.json")), json);
}

QString makeHypernetwork(const QDir& work, const QString& name, uint64_t seed)
{
    HypernetworkConfig config;
    config.name = name;
    config.sizes = {32, 64};
    config.activation = QStringLiteral("relu");
    config.weightInit = WeightInit::KaimingNormal;
    config.initSeed = seed;
    const QString path = work.filePath(name + QStringLiteral(".pt"));
    createHypernetworkFile(config, path);
    return path;
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

    ui::MainWindow window;
    window.resize(1440, 900);
    window.show();
    bool ok = shoot(window, window.createPage(), out.filePath(QStringLiteral("create.png")));

    ui::TrainPage* train = window.trainPage();
    ok = train->openRunFile(writeRunFile(work)) && ok;
    ok = shoot(window, train, out.filePath(QStringLiteral("train-setup.png"))) && ok;
    ok = train->start() && ok;
    ok = waitFor([train] { return !train->isTraining(); }, 600) && ok;
    ok = shoot(window, train, out.filePath(QStringLiteral("train.png"))) && ok;

    ui::MergePage* merge = window.mergePage();
    merge->addInputs({makeHypernetwork(work, QStringLiteral("ink"), 1),
                      makeHypernetwork(work, QStringLiteral("pastel"), 2)});
    merge->setModel(test::referencePath(QStringLiteral("full/tiny_sd1.safetensors")),
                    test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz")));
    ok = waitFor([merge] { return !merge->isChecking(); }, 60) && ok;
    merge->setWeight(0, 0.7);
    merge->setWeight(1, 0.3);
    bool previewed = false;
    QObject::connect(merge, &ui::MergePage::previewFinished, [&previewed] { previewed = true; });
    merge->startPreview();
    ok = waitFor([&previewed] { return previewed; }, 300) && ok;
    ok = shoot(window, merge, out.filePath(QStringLiteral("merge.png"))) && ok;

    ui::RunsPage* runs = window.runsPage();
    bool opened = false;
    QObject::connect(runs, &ui::RunsPage::runOpened, [&opened] { opened = true; });
    runs->setRunsFolder(work.filePath(QStringLiteral("runs")));
    runs->openRun(work.filePath(QStringLiteral("runs/tinyhn")));
    ok = waitFor([&opened] { return opened; }, 60) && ok;
    ok = shoot(window, runs, out.filePath(QStringLiteral("runs.png"))) && ok;

    return ok ? 0 : 1;
}
