// `hnstudio train` end to end on the tiny reference model and generated image folders: the run
// folder's files, determinism under previews, resume, accumulation, strength, no-crop sizes,
// divergence, Ctrl-C and bad run files.

#include "support/CliRunner.h"
#include "support/TrainingFixture.h"

#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/PngFile.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QFileInfo>
#include <QObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <csignal>

using namespace studio;
using namespace studio::test;

namespace {

struct TrainRun
{
    CliRun cli;
    QString folder;

    QString file(const QString& relative) const { return QDir(folder).filePath(relative); }
    QString lossCsv() const { return readText(file(QStringLiteral("loss.csv"))); }
};

QString pngParameters(const QString& path)
{
    for (const auto& [keyword, text] : io::readPngText(path)) {
        if (keyword == QLatin1String("parameters")) {
            return text;
        }
    }
    return {};
}

QStringList lossColumn(const QString& csv)
{
    QStringList losses;
    for (const QString& line : csv.split(QLatin1Char('\n'), Qt::SkipEmptyParts).mid(1)) {
        losses << line.section(QLatin1Char(','), 3, 3);
    }
    return losses;
}

std::vector<at::Tensor> weightsOf(const QString& path)
{
    return loadHypernetwork(path).parameters();
}

double largestDifference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b)
{
    double largest = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
        largest = std::max(largest, (a[i] - b[i]).abs().max().item<double>());
    }
    return largest;
}

QStringList filesIn(const QString& folder)
{
    QStringList names = QDir(folder).entryList(QDir::Files, QDir::Name);
    return names;
}

} // namespace

class TestTrainCli : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testRunFolder();
    void testPreviewsDoNotChangeTraining();
    void testResumeContinuesExactly();
    void testAccumulationEqualsBatch();
    void testStrengthDoesNotChangeTraining();
    void testNoCropTrainsAtSizeGroups();
    void testExplodingLearningRateStopsCleanly();
    void testInterruptSavesAndExits();
    void testErrorMidRunKeepsTheSteps();
    void testBadRunFileNamesTheField();

private:
    TrainRun train(const QString& name, const QJsonObject& json,
                   const QStringList& extraArguments = {});

    QTemporaryDir m_dir;
    QString m_images;
};

void TestTrainCli::initTestCase()
{
    QVERIFY(m_dir.isValid());
    m_images = m_dir.filePath(QStringLiteral("images"));
    std::vector<ImageSpec> specs = squareImages(4);
    specs.push_back({QStringLiteral("005-purple triangle.png"), 64, 64, QString()});
    writeImageFolder(m_images, specs, /*withCorruptFile=*/true);
}

TrainRun TestTrainCli::train(const QString& name, const QJsonObject& json,
                             const QStringList& extraArguments)
{
    TrainRun run;
    run.folder = m_dir.filePath(name);
    QJsonObject withOutput = json;
    setField(withOutput, QStringLiteral("output"), QStringLiteral("folder"), run.folder);
    const QString runFile = writeJson(m_dir.filePath(name + QStringLiteral(".json")), withOutput);
    run.cli = runHnstudio(QStringList{QStringLiteral("train"), runFile} + extraArguments);
    return run;
}

void TestTrainCli::testRunFolder()
{
    // Cosine cycles of 4 steps: cycle ends after steps 4 and 8, every-5 saves at 5 and 10.
    QJsonObject json = tinyRunJson(m_images, QString());
    const QJsonObject cosine{{QStringLiteral("cycle_steps"), 4},
                             {QStringLiteral("warmup_steps"), 1},
                             {QStringLiteral("max_lr"), 1e-3},
                             {QStringLiteral("min_lr"), 1e-5}};
    setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("schedule"),
             QStringLiteral("cosine"));
    setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("cosine"), cosine);
    setField(json, QStringLiteral("output"), QStringLiteral("preview_every"), 5);
    setField(json, QStringLiteral("output"), QStringLiteral("save_at_cycle_end"), true);
    setField(json, QStringLiteral("output"), QStringLiteral("preview_at_cycle_end"), true);
    setField(json, QStringLiteral("preview"), QStringLiteral("prompt"),
             QStringLiteral("a red circle, art by tinyhn"));
    const TrainRun run = train(QStringLiteral("folder"), json);
    QVERIFY2(run.cli.exitCode == 0, qPrintable(run.cli.err));

    QCOMPARE(filesIn(run.file(QStringLiteral("hypernetworks"))),
             QStringList({QStringLiteral("tinyhn-10.pt"), QStringLiteral("tinyhn-10.pt.optim"),
                          QStringLiteral("tinyhn-4.pt"), QStringLiteral("tinyhn-4.pt.optim"),
                          QStringLiteral("tinyhn-5.pt"), QStringLiteral("tinyhn-5.pt.optim"),
                          QStringLiteral("tinyhn-8.pt"), QStringLiteral("tinyhn-8.pt.optim")}));
    QCOMPARE(filesIn(run.file(QStringLiteral("images"))),
             QStringList({QStringLiteral("tinyhn-10.png"), QStringLiteral("tinyhn-4.png"),
                          QStringLiteral("tinyhn-5.png"), QStringLiteral("tinyhn-8.png")}));
    QCOMPARE(loadHypernetwork(run.file(QStringLiteral("hypernetworks/tinyhn-5.pt"))).config().step,
             int64_t(5));

    const QStringList rows = run.lossCsv().split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QCOMPARE(rows.size(), 11);
    QCOMPARE(rows[0], QStringLiteral("step,epoch,epoch_step,loss,learn_rate"));
    // 5 images, batch 1: 5 steps per epoch; step 7 is the 2nd step of epoch 1. Cosine step 0
    // and every restart (steps 4, 8) begin at min_lr.
    QVERIFY2(rows[7].startsWith(QStringLiteral("7,1,1,")), qPrintable(rows[7]));
    QVERIFY2(rows[1].endsWith(QStringLiteral(",1e-05")), qPrintable(rows[1]));
    QVERIFY2(rows[5].endsWith(QStringLiteral(",1e-05")), qPrintable(rows[5]));
    QVERIFY2(rows[2].endsWith(QStringLiteral(",0.001")), qPrintable(rows[2]));
    for (const QString& loss : lossColumn(run.lossCsv())) {
        QVERIFY2(loss.toDouble() > 0.0 && loss.section(QLatin1Char('.'), 1).size() == 7,
                 qPrintable(loss));
    }

    const QJsonObject saved =
        QJsonDocument::fromJson(readText(run.file(QStringLiteral("run.json"))).toUtf8()).object();
    QCOMPARE(saved.value(QStringLiteral("hypernetwork")).toObject().value(QStringLiteral("name")),
             QJsonValue(QStringLiteral("tinyhn")));

    const QString parameters = pngParameters(run.file(QStringLiteral("images/tinyhn-8.png")));
    QVERIFY2(parameters.startsWith(QStringLiteral("a red circle, art by tinyhn\n")),
             qPrintable(parameters));
    for (const char* part : {"Steps: 3", "Sampler: DDIM", "CFG scale: 5", "Seed: 11", "Size: 64x64",
                             "Model: tiny_sd1", "Hypernet: tinyhn"}) {
        QVERIFY2(parameters.contains(QString::fromLatin1(part)), qPrintable(parameters));
    }

    const QString log = readText(run.file(QStringLiteral("train.log")));
    QVERIFY2(log.contains(QStringLiteral("broken.png")), qPrintable(log));
    const QString dataset = readText(run.file(QStringLiteral("dataset.csv")));
    QVERIFY2(dataset.contains(QStringLiteral("\"005-purple triangle.png\",\"purple triangle\"")),
             qPrintable(dataset));
}

void TestTrainCli::testPreviewsDoNotChangeTraining()
{
    QJsonObject json = tinyRunJson(m_images, QString());
    setField(json, QStringLiteral("training"), QStringLiteral("steps"), 6);
    const TrainRun quiet = train(QStringLiteral("no-previews"), json);
    QVERIFY2(quiet.cli.exitCode == 0, qPrintable(quiet.cli.err));

    setField(json, QStringLiteral("output"), QStringLiteral("preview_every"), 2);
    setField(json, QStringLiteral("preview"), QStringLiteral("seed"), -1);
    const TrainRun previewed = train(QStringLiteral("previews"), json);
    QVERIFY2(previewed.cli.exitCode == 0, qPrintable(previewed.cli.err));

    QCOMPARE(filesIn(previewed.file(QStringLiteral("images"))).size(), 3);
    QCOMPARE(previewed.lossCsv(), quiet.lossCsv());
    QCOMPARE(lossColumn(quiet.lossCsv()).size(), 6);
    QCOMPARE(
        largestDifference(weightsOf(quiet.file(QStringLiteral("hypernetworks/tinyhn-6.pt"))),
                          weightsOf(previewed.file(QStringLiteral("hypernetworks/tinyhn-6.pt")))),
        0.0);
}

void TestTrainCli::testResumeContinuesExactly()
{
    // A cosine schedule, so the schedule position matters too.
    QJsonObject json = tinyRunJson(m_images, QString());
    setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("schedule"),
             QStringLiteral("cosine"));
    setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("cosine"),
             QJsonObject{{QStringLiteral("cycle_steps"), 7},
                         {QStringLiteral("warmup_steps"), 2},
                         {QStringLiteral("max_lr"), 2e-3},
                         {QStringLiteral("min_lr"), 1e-4}});
    setField(json, QStringLiteral("output"), QStringLiteral("save_every"), 0);
    const TrainRun whole = train(QStringLiteral("whole"), json);
    QVERIFY2(whole.cli.exitCode == 0, qPrintable(whole.cli.err));

    const TrainRun first = train(QStringLiteral("interrupted"), json,
                                 {QStringLiteral("--steps"), QStringLiteral("6")});
    QVERIFY2(first.cli.exitCode == 0, qPrintable(first.cli.err));
    const QString checkpoint = first.file(QStringLiteral("hypernetworks/tinyhn-6.pt"));
    QVERIFY(QFileInfo::exists(checkpoint + QStringLiteral(".optim")));
    const TrainRun resumed =
        train(QStringLiteral("interrupted"), json, {QStringLiteral("--resume"), checkpoint});
    QVERIFY2(resumed.cli.exitCode == 0, qPrintable(resumed.cli.err));

    QCOMPARE(resumed.lossCsv(), whole.lossCsv());
    QCOMPARE(
        largestDifference(weightsOf(whole.file(QStringLiteral("hypernetworks/tinyhn-10.pt"))),
                          weightsOf(resumed.file(QStringLiteral("hypernetworks/tinyhn-10.pt")))),
        0.0);
    QVERIFY(readText(resumed.file(QStringLiteral("train.log")))
                .contains(QStringLiteral("optimizer state restored")));
}

void TestTrainCli::testAccumulationEqualsBatch()
{
    const QString four = m_dir.filePath(QStringLiteral("four-images"));
    writeImageFolder(four, squareImages(4), false);
    QJsonObject json = tinyRunJson(four, QString());
    setField(json, QStringLiteral("training"), QStringLiteral("steps"), 1);
    // Plain SGD: the update is the averaged gradient times the rate, so comparing weights
    // compares gradients. (Adam's first step is lr * g / (|g| + eps), which turns float-noise
    // differences of near-zero gradients into differences as large as the rate itself.)
    setField(json, QStringLiteral("training"), QStringLiteral("optimizer"),
             QJsonObject{{QStringLiteral("name"), QStringLiteral("sgd")}});
    setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("rate"), 1.0);

    setField(json, QStringLiteral("training"), QStringLiteral("batch_size"), 1);
    setField(json, QStringLiteral("training"), QStringLiteral("gradient_accumulation"), 4);
    const TrainRun accumulated = train(QStringLiteral("accumulated"), json);
    QVERIFY2(accumulated.cli.exitCode == 0, qPrintable(accumulated.cli.err));

    setField(json, QStringLiteral("training"), QStringLiteral("batch_size"), 4);
    setField(json, QStringLiteral("training"), QStringLiteral("gradient_accumulation"), 1);
    const TrainRun batched = train(QStringLiteral("batched"), json);
    QVERIFY2(batched.cli.exitCode == 0, qPrintable(batched.cli.err));

    setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("rate"), 1e-30);
    const TrainRun still = train(QStringLiteral("still"), json);
    QVERIFY2(still.cli.exitCode == 0, qPrintable(still.cli.err));

    const auto a = weightsOf(accumulated.file(QStringLiteral("hypernetworks/tinyhn-1.pt")));
    const auto b = weightsOf(batched.file(QStringLiteral("hypernetworks/tinyhn-1.pt")));
    const auto start = weightsOf(still.file(QStringLiteral("hypernetworks/tinyhn-1.pt")));
    const double update = largestDifference(b, start);
    const double mismatch = largestDifference(a, b);
    qInfo("largest update %.3g, largest mismatch %.3g", update, mismatch);
    QVERIFY2(update > 1e-4, qPrintable(QString::number(update))); // the update is real
    QVERIFY2(mismatch < 1e-4 * update, qPrintable(QString::number(mismatch)));
    QVERIFY(std::abs(lossColumn(accumulated.lossCsv()).front().toDouble() -
                     lossColumn(batched.lossCsv()).front().toDouble()) < 1e-6);
}

void TestTrainCli::testStrengthDoesNotChangeTraining()
{
    QJsonObject json = tinyRunJson(m_images, QString());
    setField(json, QStringLiteral("training"), QStringLiteral("steps"), 4);
    setField(json, QStringLiteral("output"), QStringLiteral("preview_every"), 4);
    const TrainRun full = train(QStringLiteral("strength-1"), json);
    QVERIFY2(full.cli.exitCode == 0, qPrintable(full.cli.err));

    setField(json, QStringLiteral("hypernetwork"), QStringLiteral("strength"), 0.3);
    const TrainRun weak = train(QStringLiteral("strength-0.3"), json);
    QVERIFY2(weak.cli.exitCode == 0, qPrintable(weak.cli.err));

    QCOMPARE(weak.lossCsv(), full.lossCsv());
    const cv::Mat a = cv::imread(full.file(QStringLiteral("images/tinyhn-4.png")).toStdString());
    const cv::Mat b = cv::imread(weak.file(QStringLiteral("images/tinyhn-4.png")).toStdString());
    QVERIFY(!a.empty() && !b.empty());
    QCOMPARE(cv::norm(a, b, cv::NORM_INF), 0.0); // previews run at strength 1 as well
}

void TestTrainCli::testNoCropTrainsAtSizeGroups()
{
    const QString mixed = m_dir.filePath(QStringLiteral("mixed"));
    writeImageFolder(mixed,
                     {{QStringLiteral("wide1.png"), 256, 128, QStringLiteral("wide one")},
                      {QStringLiteral("wide2.png"), 200, 100, QStringLiteral("wide two")},
                      {QStringLiteral("tall1.png"), 128, 256, QStringLiteral("tall one")},
                      {QStringLiteral("tall2.png"), 64, 128, QStringLiteral("tall two")},
                      {QStringLiteral("square.png"), 128, 128, QStringLiteral("square")}},
                     true);
    QJsonObject json = tinyRunJson(mixed, QString());
    setField(json, QStringLiteral("dataset"), QStringLiteral("no_crop"), true);
    setField(json, QStringLiteral("dataset"), QStringLiteral("width"), 128);
    setField(json, QStringLiteral("dataset"), QStringLiteral("height"), 128);
    setField(json, QStringLiteral("training"), QStringLiteral("batch_size"), 2);
    setField(json, QStringLiteral("training"), QStringLiteral("steps"), 3);
    const TrainRun run = train(QStringLiteral("no-crop"), json);
    QVERIFY2(run.cli.exitCode == 0, qPrintable(run.cli.err));

    // Long side fitted to 128, aspect kept, sides rounded up to 64: 256x128 -> 128x64,
    // 200x100 -> 128x64, 128x256 -> 64x128, 64x128 keeps its size.
    const QString dataset = readText(run.file(QStringLiteral("dataset.csv")));
    for (const char* row :
         {"\"wide1.png\",\"wide one\",128,64", "\"wide2.png\",\"wide two\",128,64",
          "\"tall1.png\",\"tall one\",64,128", "\"tall2.png\",\"tall two\",64,128",
          "\"square.png\",\"square\",128,128"}) {
        QVERIFY2(dataset.contains(QString::fromLatin1(row)), qPrintable(dataset));
    }
    QCOMPARE(lossColumn(run.lossCsv()).size(), 3);
}

void TestTrainCli::testExplodingLearningRateStopsCleanly()
{
    QJsonObject json = tinyRunJson(m_images, QString());
    setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("rate"), 1e35);
    setField(json, QStringLiteral("training"), QStringLiteral("optimizer"),
             QJsonObject{{QStringLiteral("name"), QStringLiteral("sgd")}});
    setField(json, QStringLiteral("output"), QStringLiteral("save_every"), 1);
    const TrainRun run = train(QStringLiteral("exploding"), json);

    QCOMPARE(run.cli.exitCode, 1);
    QVERIFY2(run.cli.err.contains(QStringLiteral("training stopped")) &&
                 (run.cli.err.contains(QStringLiteral("NaN")) ||
                  run.cli.err.contains(QStringLiteral("infinite"))),
             qPrintable(run.cli.err));
    const QStringList saves = QDir(run.file(QStringLiteral("hypernetworks")))
                                  .entryList({QStringLiteral("*.pt")}, QDir::Files, QDir::Time);
    QVERIFY2(!saves.isEmpty(), qPrintable(run.cli.err));
    for (const QString& save : saves) {
        for (const at::Tensor& weight :
             weightsOf(run.file(QStringLiteral("hypernetworks/") + save))) {
            QVERIFY(at::isfinite(weight).all().item<bool>());
        }
    }
    QVERIFY(lossColumn(run.lossCsv()).size() < 10);
}

void TestTrainCli::testInterruptSavesAndExits()
{
    QJsonObject json = tinyRunJson(m_images, QString());
    setField(json, QStringLiteral("training"), QStringLiteral("steps"), 100000);
    setField(json, QStringLiteral("output"), QStringLiteral("save_every"), 0);
    const QString folder = m_dir.filePath(QStringLiteral("interrupt"));
    setField(json, QStringLiteral("output"), QStringLiteral("folder"), folder);
    const QString runFile = writeJson(m_dir.filePath(QStringLiteral("interrupt.json")), json);

    QProcess process;
    process.start(QStringLiteral(HNSTUDIO_BINARY), {QStringLiteral("train"), runFile});
    QVERIFY(process.waitForStarted());
    QByteArray err;
    // Wait for the first progress line, so the handler is installed and steps are running.
    while (!err.contains("step ") && process.state() == QProcess::Running) {
        process.waitForReadyRead(100);
        err += process.readAllStandardError();
    }
    QVERIFY2(process.state() == QProcess::Running, err.constData());
    QCOMPARE(::kill(static_cast<pid_t>(process.processId()), SIGINT), 0);
    QVERIFY(process.waitForFinished(60000));
    err += process.readAllStandardError();

    QCOMPARE(process.exitStatus(), QProcess::NormalExit);
    QVERIFY2(process.exitCode() == 0, err.constData());
    const QStringList saves = QDir(folder + QStringLiteral("/hypernetworks"))
                                  .entryList({QStringLiteral("tinyhn-*.pt")}, QDir::Files);
    QCOMPARE(saves.size(), 1);
    const int64_t step =
        loadHypernetwork(folder + QStringLiteral("/hypernetworks/") + saves.front()).config().step;
    QVERIFY(step >= 1 && step < 100000);
    QCOMPARE(lossColumn(readText(folder + QStringLiteral("/loss.csv"))).size(), qsizetype(step));
    QVERIFY(QFileInfo::exists(folder + QStringLiteral("/hypernetworks/") + saves.front() +
                              QStringLiteral(".optim")));
}

void TestTrainCli::testErrorMidRunKeepsTheSteps()
{
    // The preview of step 2 cannot be written (a folder stands where its PNG goes): the run
    // stops with that error, and the two steps done are saved, not lost.
    QJsonObject json = tinyRunJson(m_images, QString());
    setField(json, QStringLiteral("output"), QStringLiteral("save_every"), 0);
    setField(json, QStringLiteral("output"), QStringLiteral("preview_every"), 2);
    const QString folder = m_dir.filePath(QStringLiteral("preview-error"));
    QVERIFY(QDir().mkpath(folder + QStringLiteral("/images/tinyhn-2.png")));
    const TrainRun run = train(QStringLiteral("preview-error"), json);

    QCOMPARE(run.cli.exitCode, 1);
    QVERIFY2(run.cli.err.contains(QStringLiteral("tinyhn-2.png")), qPrintable(run.cli.err));
    QVERIFY2(run.cli.err.contains(QStringLiteral("training stopped at step 2")),
             qPrintable(run.cli.err));
    const QString saved = run.file(QStringLiteral("hypernetworks/tinyhn-2.pt"));
    QCOMPARE(loadHypernetwork(saved).config().step, int64_t(2));
    QCOMPARE(lossColumn(run.lossCsv()).size(), qsizetype(2));
}

void TestTrainCli::testBadRunFileNamesTheField()
{
    QJsonObject json = tinyRunJson(m_images, QString());
    setField(json, QStringLiteral("training"), QStringLiteral("steps"), 0);
    const TrainRun zeroSteps = train(QStringLiteral("bad-steps"), json);
    QCOMPARE(zeroSteps.cli.exitCode, 1);
    QVERIFY2(zeroSteps.cli.err.contains(QStringLiteral("training.steps")),
             qPrintable(zeroSteps.cli.err));

    json = tinyRunJson(m_dir.filePath(QStringLiteral("no-such-folder")), QString());
    const TrainRun missing = train(QStringLiteral("bad-folder"), json);
    QCOMPARE(missing.cli.exitCode, 1);
    QVERIFY2(missing.cli.err.contains(QStringLiteral("dataset.folder")),
             qPrintable(missing.cli.err));

    const QString emptyFolder = m_dir.filePath(QStringLiteral("no-images"));
    QVERIFY(QDir().mkpath(emptyFolder));
    json = tinyRunJson(emptyFolder, QString());
    const TrainRun empty = train(QStringLiteral("empty-folder"), json);
    QCOMPARE(empty.cli.exitCode, 1);
    QVERIFY2(empty.cli.err.contains(QStringLiteral("dataset.folder")), qPrintable(empty.cli.err));

    const CliRun noFile = runHnstudio({QStringLiteral("train")});
    QCOMPARE(noFile.exitCode, 2);
}

QTEST_GUILESS_MAIN(TestTrainCli)
#include "TestTrainCli.moc"
