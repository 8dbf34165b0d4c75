// The Train page on the tiny reference model and a generated dataset: a run set up through the
// page trains with live plots and previews, pauses, resumes and stops; the learning-rate curve
// drawn before training is the one `hnstudio lr-curve` prints; run files round-trip; the
// derived numbers and inline validation follow the fields; the UI stays responsive while
// training; closing the window stops a run cleanly.

#include "support/CliRunner.h"
#include "support/TrainingFixture.h"

#include "core/train/RunConfig.h"
#include "core/train/Trainer.h"
#include "ui/LearningRatePlot.h"
#include "ui/LossPlot.h"
#include "ui/MainWindow.h"
#include "ui/PreviewGallery.h"
#include "ui/RunForm.h"
#include "ui/TrainPage.h"

#include <QComboBox>
#include <QElapsedTimer>
#include <QLineEdit>
#include <QListWidget>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTimer>
#include <QtTest>

using namespace studio;
using namespace studio::test;
using studio::ui::TrainPage;

namespace {

// Model loading and the first steps of the tiny model take a few seconds on a loaded machine.
constexpr int kTrainingTimeoutMs = 120000;

struct CurvePoint
{
    int64_t step = 0;
    double rate = 0.0;
};

std::vector<CurvePoint> parseCurveCsv(const QString& csv)
{
    std::vector<CurvePoint> points;
    for (const QString& line : csv.split(QLatin1Char('\n'), Qt::SkipEmptyParts).mid(1)) {
        points.push_back({line.section(QLatin1Char(','), 0, 0).toLongLong(),
                          line.section(QLatin1Char(','), 1, 1).toDouble()});
    }
    return points;
}

int csvRows(const QString& path)
{
    const QStringList lines = readText(path).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    return static_cast<int>(lines.size()) - 1; // without the header
}

template <typename Widget> Widget* field(TrainPage& page, const char* path)
{
    auto* widget = qobject_cast<Widget*>(page.form()->fieldWidget(QLatin1String(path)));
    if (widget == nullptr) {
        qFatal("no field %s", path);
    }
    return widget;
}

} // namespace

class TestTrainPage : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testLearningRateCurveEqualsCli_data();
    void testLearningRateCurveEqualsCli();
    void testCurveFollowsTheFields();
    void testDerivedNumbersAndDatasetPreview();
    void testDescribesTheModelAndAContinuedFile();
    void testValidationIsShownInline();
    void testRunFileRoundTrip();
    void testTrainPauseResumeStop();
    void testStaysResponsiveWhileTraining();
    void testClosingTheWindowStopsTraining();

private:
    // `previews`: preview every so many steps (0: none).
    RunConfig tinyRun(const QString& name, int64_t steps, int64_t previews) const;

    QTemporaryDir m_dir;
    QString m_images;
};

void TestTrainPage::initTestCase()
{
    // Keeps the user's real settings out of the test, and the test's out of them.
    QStandardPaths::setTestModeEnabled(true);
    QVERIFY(m_dir.isValid());
    m_images = m_dir.filePath(QStringLiteral("images"));
    writeImageFolder(m_images, squareImages(4), /*withCorruptFile=*/false);
}

RunConfig TestTrainPage::tinyRun(const QString& name, int64_t steps, int64_t previews) const
{
    QJsonObject json = tinyRunJson(m_images, m_dir.filePath(name));
    setField(json, QStringLiteral("training"), QStringLiteral("steps"), qint64(steps));
    setField(json, QStringLiteral("output"), QStringLiteral("preview_every"), qint64(previews));
    setField(json, QStringLiteral("output"), QStringLiteral("save_every"), 0);
    return runConfigFromJson(json, QString(), m_dir.path());
}

void TestTrainPage::testLearningRateCurveEqualsCli_data()
{
    QTest::addColumn<QJsonObject>("learningRate");
    QTest::addColumn<QStringList>("cliArguments");

    const QJsonObject cosine{
        {QStringLiteral("cycle_steps"), 10}, {QStringLiteral("cycle_mult"), 1.5},
        {QStringLiteral("warmup_steps"), 2}, {QStringLiteral("max_lr"), 1e-3},
        {QStringLiteral("min_lr"), 1e-5},    {QStringLiteral("decay"), 0.8}};
    QTest::newRow("cosine") << QJsonObject{{QStringLiteral("schedule"), QStringLiteral("cosine")},
                                           {QStringLiteral("cosine"), cosine}}
                            << QStringList{
                                   QStringLiteral("--cosine"), QStringLiteral("--max-lr"),
                                   QStringLiteral("1e-3"),     QStringLiteral("--min-lr"),
                                   QStringLiteral("1e-5"),     QStringLiteral("--cycle-steps"),
                                   QStringLiteral("10"),       QStringLiteral("--cycle-mult"),
                                   QStringLiteral("1.5"),      QStringLiteral("--warmup"),
                                   QStringLiteral("2"),        QStringLiteral("--gamma"),
                                   QStringLiteral("0.8")};
    const QString rates = QStringLiteral("1e-3:10, 5e-4:25, 1e-4");
    QTest::newRow("step string") << QJsonObject{{QStringLiteral("schedule"),
                                                 QStringLiteral("step_string")},
                                                {QStringLiteral("string"), rates}}
                                 << QStringList{QStringLiteral("--lr"), rates};
}

void TestTrainPage::testLearningRateCurveEqualsCli()
{
    QFETCH(QJsonObject, learningRate);
    QFETCH(QStringList, cliArguments);

    QJsonObject json = tinyRunJson(m_images, m_dir.filePath(QStringLiteral("curve")));
    setField(json, QStringLiteral("training"), QStringLiteral("steps"), 40);
    setField(json, QStringLiteral("training"), QStringLiteral("learning_rate"), learningRate);
    TrainPage page;
    page.setRunConfig(runConfigFromJson(json, QString(), m_dir.path()));

    const CliRun cli =
        runHnstudio(QStringList{QStringLiteral("lr-curve"), QStringLiteral("--steps"),
                                QStringLiteral("40"), QStringLiteral("--csv")} +
                    cliArguments);
    QVERIFY2(cli.exitCode == 0, qPrintable(cli.err));
    const std::vector<CurvePoint> expected = parseCurveCsv(cli.out);
    QCOMPARE(expected.size(), size_t(40));

    // Drawn before anything trains, from the fields alone.
    const ui::LearningRatePlot* plot = page.learningRatePlot();
    QCOMPARE(plot->plannedPointCount(), int(expected.size()));
    QCOMPARE(plot->usedPointCount(), 0);
    for (int i = 0; i < plot->plannedPointCount(); ++i) {
        // The plot counts updates from 1, as loss.csv does; lr-curve counts completed steps.
        QCOMPARE(plot->plannedStep(i), double(expected[size_t(i)].step + 1));
        QVERIFY2(plot->plannedRate(i) == expected[size_t(i)].rate,
                 qPrintable(QStringLiteral("step %1: plot %2, lr-curve %3")
                                .arg(expected[size_t(i)].step)
                                .arg(plot->plannedRate(i), 0, 'g', 17)
                                .arg(expected[size_t(i)].rate, 0, 'g', 17)));
    }
}

void TestTrainPage::testCurveFollowsTheFields()
{
    TrainPage page;
    page.setRunConfig(tinyRun(QStringLiteral("follow"), 30, 0));
    QCOMPARE(page.learningRatePlot()->plannedPointCount(), 30);

    field<QSpinBox>(page, "training.steps")->setValue(75);
    QTRY_COMPARE(page.learningRatePlot()->plannedPointCount(), 75);

    // A schedule that cannot be built draws nothing and says why.
    auto* schedule = field<QComboBox>(page, "training.learning_rate.schedule");
    schedule->setCurrentIndex(schedule->findData(QStringLiteral("step_string")));
    field<QLineEdit>(page, "training.learning_rate.string")->setText(QStringLiteral("1e-3:x"));
    QTRY_COMPARE(page.learningRatePlot()->plannedPointCount(), 0);
    QVERIFY2(page.validationMessage().startsWith(QStringLiteral("training.learning_rate.string")),
             qPrintable(page.validationMessage()));

    field<QLineEdit>(page, "training.learning_rate.string")
        ->setText(QStringLiteral("1e-3:10, 1e-4:20"));
    // The string ends at step 20, before the 75 steps: training (and the curve) stop there.
    QTRY_COMPARE(page.learningRatePlot()->plannedPointCount(), 20);
    QCOMPARE(page.learningRatePlot()->plannedRate(9), 1e-3);
    QCOMPARE(page.learningRatePlot()->plannedRate(10), 1e-4);
}

void TestTrainPage::testDerivedNumbersAndDatasetPreview()
{
    QJsonObject json = tinyRunJson(m_images, m_dir.filePath(QStringLiteral("derived")));
    setField(json, QStringLiteral("training"), QStringLiteral("batch_size"), 2);
    setField(json, QStringLiteral("training"), QStringLiteral("gradient_accumulation"), 2);
    setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("schedule"),
             QStringLiteral("cosine"));
    setField(json, QStringLiteral("training.learning_rate"), QStringLiteral("cosine"),
             QJsonObject{{QStringLiteral("cycle_steps"), 4},
                         {QStringLiteral("warmup_steps"), 1},
                         {QStringLiteral("max_lr"), 1e-3}});
    TrainPage page;
    page.setRunConfig(runConfigFromJson(json, QString(), m_dir.path()));
    ui::RunForm* form = page.form();

    // Before the folder has been read only the configured product is known.
    QCOMPARE(form->derivedNumbers().imagesPerStep, 4);
    QTRY_COMPARE_WITH_TIMEOUT(form->datasetImageCount(), 4, 30000);
    ui::DerivedNumbers numbers = form->derivedNumbers();
    QCOMPARE(numbers.imagesPerStep, 4);
    QCOMPARE(numbers.stepsPerEpoch, int64_t(1));
    QCOMPARE(numbers.cycleEpochs, 4.0);
    QVERIFY2(form->derivedText().contains(QStringLiteral("4 images per step")),
             qPrintable(form->derivedText()));

    field<QSpinBox>(page, "training.batch_size")->setValue(1);
    QTRY_COMPARE(form->derivedNumbers().stepsPerEpoch, int64_t(2));
    QCOMPARE(form->derivedNumbers().imagesPerStep, 2);
    QCOMPARE(form->derivedNumbers().cycleEpochs, 2.0);

    // As in training, a batch larger than the dataset shrinks to it, and accumulation to what
    // one epoch can fill.
    field<QSpinBox>(page, "training.batch_size")->setValue(8);
    QTRY_COMPARE(form->derivedNumbers().batchSize, 4);
    QCOMPARE(form->derivedNumbers().gradientAccumulation, 1);
    QCOMPARE(form->derivedNumbers().stepsPerEpoch, int64_t(1));

    // A thumbnail per image, with the caption it gets and the prompt the template makes of it.
    auto* strip = page.findChild<QListWidget*>(QStringLiteral("datasetThumbnails"));
    QCOMPARE(strip->count(), 4);
    QVERIFY(!strip->item(3)->icon().isNull());
    QStringList captions;
    for (const ImageSpec& spec : squareImages(4)) {
        captions << spec.caption;
    }
    QCOMPARE(form->datasetCaptions(), captions);
    for (int i = 0; i < 4; ++i) {
        const QString prompt = form->datasetPrompts().at(i);
        QVERIFY2(prompt.contains(captions[i]) && prompt.contains(QStringLiteral("tinyhn")),
                 qPrintable(prompt));
    }
}

void TestTrainPage::testDescribesTheModelAndAContinuedFile()
{
    TrainPage page;
    page.setRunConfig(tinyRun(QStringLiteral("describe"), 520, 0));
    QTRY_VERIFY_WITH_TIMEOUT(page.form()->modelDescription().startsWith(QStringLiteral("SD1.x")),
                             30000);
    QCOMPARE(page.learningRatePlot()->plannedPointCount(), 520);

    // The reference hypernetwork has trained 500 steps: 20 are left, and the curve says so.
    const QString file = referencePath(QStringLiteral("full/tiny_sd1_hn.pt"));
    page.useHypernetworkFile(file);
    QTRY_COMPARE_WITH_TIMEOUT(page.form()->continuedStep(), int64_t(500), 30000);
    QVERIFY2(page.form()->hypernetworkFileDescription().startsWith(QStringLiteral("step 500")),
             qPrintable(page.form()->hypernetworkFileDescription()));
    QTRY_COMPARE(page.learningRatePlot()->plannedPointCount(), 20);
    QCOMPARE(page.learningRatePlot()->plannedStep(0), 501.0);
    QCOMPARE(page.runConfig()->hypernetwork.file, QDir::cleanPath(file));

    // Something that is not a checkpoint is named as such.
    field<QLineEdit>(page, "model.checkpoint")
        ->setText(QDir(m_images).filePath(QStringLiteral("img0.png")));
    QTRY_VERIFY_WITH_TIMEOUT(page.form()->modelDescription().contains(QStringLiteral("img0.png")),
                             30000);
}

void TestTrainPage::testValidationIsShownInline()
{
    TrainPage page;
    page.setRunConfig(tinyRun(QStringLiteral("validation"), 10, 0));
    QVERIFY2(page.validationMessage().isEmpty(), qPrintable(page.validationMessage()));
    QVERIFY(page.runConfig().has_value());

    QLineEdit* dropout = field<QLineEdit>(page, "hypernetwork.create.dropout_structure");
    dropout->setText(QStringLiteral("0, 1.5, 0"));
    QTRY_VERIFY(!page.form()->shownProblem().isEmpty());
    QVERIFY2(page.form()->shownProblem().startsWith(
                 QStringLiteral("hypernetwork.create.dropout_structure")),
             qPrintable(page.form()->shownProblem()));
    QVERIFY(!dropout->styleSheet().isEmpty()); // the field itself is marked
    QVERIFY(!page.runConfig().has_value());
    QVERIFY(!page.start());
    QVERIFY(!page.isTraining());
    QVERIFY2(page.statusText().contains(QStringLiteral("dropout_structure")),
             qPrintable(page.statusText()));

    dropout->setText(QStringLiteral("0, 0.1, 0"));
    QTRY_VERIFY(page.form()->shownProblem().isEmpty());
    QVERIFY(dropout->styleSheet().isEmpty());

    field<QLineEdit>(page, "training.optimizer.eps")->setText(QStringLiteral("tiny"));
    QTRY_COMPARE(page.form()->shownProblem(),
                 QStringLiteral("training.optimizer.eps: 'tiny' is not a number; write one such "
                                "as 0.5 or 1e-5"));
}

void TestTrainPage::testRunFileRoundTrip()
{
    // Something other than the default in every section.
    QJsonObject json = tinyRunJson(m_images, m_dir.filePath(QStringLiteral("roundtrip")));
    setField(json, QStringLiteral("hypernetwork"), QStringLiteral("strength"), 0.75);
    QJsonObject create = json.value(QStringLiteral("hypernetwork"))
                             .toObject()
                             .value(QStringLiteral("create"))
                             .toObject();
    create.insert(QStringLiteral("dropout_structure"), QStringLiteral("0, 0.15, 0"));
    create.insert(QStringLiteral("layer_norm"), true);
    create.insert(QStringLiteral("init_seed"), qint64(9007199254740993)); // needs all 64 bits
    setField(json, QStringLiteral("hypernetwork"), QStringLiteral("create"), create);
    setField(json, QStringLiteral("dataset"), QStringLiteral("filename_word_regex"),
             QStringLiteral("\\w+"));
    setField(json, QStringLiteral("dataset"), QStringLiteral("tag_dropout"), 0.2);
    setField(json, QStringLiteral("dataset"), QStringLiteral("latent_sampling"),
             QStringLiteral("random"));
    setField(json, QStringLiteral("training"), QStringLiteral("seed"), qint64(1234567890123));
    setField(json, QStringLiteral("training"), QStringLiteral("optimizer"),
             QJsonObject{{QStringLiteral("name"), QStringLiteral("sgd")},
                         {QStringLiteral("momentum"), 0.9},
                         {QStringLiteral("nesterov"), true}});
    setField(json, QStringLiteral("training"), QStringLiteral("clip_grad"),
             QJsonObject{{QStringLiteral("mode"), QStringLiteral("norm")},
                         {QStringLiteral("value"), 1.0}});
    setField(json, QStringLiteral("training"), QStringLiteral("attention"),
             QStringLiteral("sliced"));
    setField(json, QStringLiteral("preview"), QStringLiteral("negative_prompt"),
             QStringLiteral("blurry"));
    setField(json, QStringLiteral("output"), QStringLiteral("save_at_cycle_end"), true);
    const RunConfig config = runConfigFromJson(json, QString(), m_dir.path());

    TrainPage page;
    page.setRunConfig(config);
    QVERIFY(page.runConfig().has_value());
    QVERIFY(*page.runConfig() == config);

    const QString path = m_dir.filePath(QStringLiteral("saved-run.json"));
    QVERIFY2(page.saveRunFile(path), qPrintable(page.statusText()));
    QVERIFY(readRunConfig(path) == config); // what `hnstudio train` will read

    TrainPage reopened;
    QVERIFY2(reopened.openRunFile(path), qPrintable(reopened.statusText()));
    QVERIFY(reopened.runConfig().has_value());
    QVERIFY(*reopened.runConfig() == config);

    // A file that is not a run file is refused with the parser's message; nothing changes.
    const QString broken = writeJson(
        m_dir.filePath(QStringLiteral("broken-run.json")),
        QJsonObject{{QStringLiteral("training"), QJsonObject{{QStringLiteral("stpes"), 10}}}});
    QVERIFY(!reopened.openRunFile(broken));
    QVERIFY2(reopened.statusText().contains(QStringLiteral("did you mean 'steps'")),
             qPrintable(reopened.statusText()));
    QVERIFY(*reopened.runConfig() == config);
}

void TestTrainPage::testTrainPauseResumeStop()
{
    const RunConfig config = tinyRun(QStringLiteral("train"), 1000, 3);
    TrainPage page;
    page.setRunConfig(config);
    QSignalSpy finished(&page, &TrainPage::trainingFinished);
    QSignalSpy failed(&page, &TrainPage::trainingFailed);

    QVERIFY2(page.start(), qPrintable(page.statusText()));
    QVERIFY(page.isTraining());
    QVERIFY(!page.start()); // one run at a time

    QTRY_VERIFY_WITH_TIMEOUT(page.lossPlot()->pointCount() >= 3 &&
                                 page.learningRatePlot()->usedPointCount() >= 3,
                             kTrainingTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(page.previewGallery()->count() >= 1, kTrainingTimeoutMs);
    QVERIFY(failed.isEmpty());
    QCOMPARE(page.previewGallery()->stepAt(0), int64_t(3));
    QVERIFY(QFileInfo::exists(page.previewGallery()->pathAt(0)));
    QTRY_VERIFY(page.previewGallery()->loadedCount() >= 1);
    QCOMPARE(page.learningRatePlot()->usedRate(0), 1e-3);
    QVERIFY(page.lossPlot()->rawLoss(0) > 0.0);

    page.pause();
    QVERIFY(page.isPaused());
    QTest::qWait(1000); // the step under way when pause was pressed completes
    const int64_t pausedAt = page.lastStep();
    QTest::qWait(1500);
    QCOMPARE(page.lastStep(), pausedAt);
    QVERIFY(page.isTraining());

    page.resume();
    QVERIFY(!page.isPaused());
    QTRY_VERIFY_WITH_TIMEOUT(page.lastStep() >= pausedAt + 2, kTrainingTimeoutMs);

    page.stop();
    QTRY_VERIFY_WITH_TIMEOUT(!page.isTraining(), kTrainingTimeoutMs);
    QCOMPARE(finished.size(), 1);
    QVERIFY(failed.isEmpty());
    const auto result = finished.front().front().value<TrainingResult>();
    QCOMPARE(int(result.status), int(TrainingStatus::Cancelled));
    QCOMPARE(result.stepsDone, page.lastStep());
    QVERIFY2(QFileInfo::exists(result.lastSave), qPrintable(result.lastSave));

    // Every step the trainer wrote to loss.csv reached the plots, and nothing else did.
    const int rows = csvRows(Trainer::lossCsvPath(config.output.folder));
    QCOMPARE(page.lossPlot()->pointCount(), rows);
    QCOMPARE(page.learningRatePlot()->usedPointCount(), rows);
    QCOMPARE(int64_t(rows), result.stepsDone);
}

void TestTrainPage::testStaysResponsiveWhileTraining()
{
    // Previews every 2 steps: the gallery reads images while the plots redraw.
    TrainPage page;
    page.resize(1200, 800);
    page.show();
    QVERIFY(QTest::qWaitForWindowExposed(&page));
    page.setRunConfig(tinyRun(QStringLiteral("responsive"), 1000, 2));

    // A 10 ms timer on the UI thread: how late does it ever fire?
    QElapsedTimer clock;
    qint64 last = 0;
    qint64 worstLateness = 0;
    QTimer ticker;
    ticker.setTimerType(Qt::PreciseTimer);
    ticker.setInterval(10);
    connect(&ticker, &QTimer::timeout, this, [&] {
        const qint64 now = clock.elapsed();
        worstLateness = std::max(worstLateness, now - last - ticker.interval());
        last = now;
    });

    QVERIFY2(page.start(), qPrintable(page.statusText()));
    // Measured from the start: loading the model is training work too.
    clock.start();
    ticker.start();
    QTRY_VERIFY_WITH_TIMEOUT(page.previewGallery()->loadedCount() >= 2 && clock.elapsed() >= 4000,
                             kTrainingTimeoutMs);
    const qint64 measured = clock.elapsed();
    ticker.stop();
    page.stopAndWait();

    qInfo("UI thread: worst timer lateness %lld ms over %lld ms of training (%d steps)",
          worstLateness, measured, int(page.lastStep()));
    QVERIFY(page.lastStep() >= 4);
    QVERIFY2(worstLateness < 100, qPrintable(QString::number(worstLateness)));
}

void TestTrainPage::testClosingTheWindowStopsTraining()
{
    const RunConfig config = tinyRun(QStringLiteral("closing"), 1000, 0);
    ui::MainWindow window;
    window.show();
    QVERIFY(QTest::qWaitForWindowExposed(&window));
    TrainPage* page = window.trainPage();
    page->setRunConfig(config);
    QVERIFY2(page->start(), qPrintable(page->statusText()));
    QTRY_VERIFY_WITH_TIMEOUT(page->lastStep() >= 2, kTrainingTimeoutMs);

    QVERIFY(window.close());
    // The run ended before the window went, with its last step saved.
    QVERIFY(!page->isTraining());
    const QString saved =
        QDir(config.output.folder)
            .filePath(QStringLiteral("hypernetworks/tinyhn-%1.pt").arg(page->lastStep()));
    QVERIFY2(QFileInfo::exists(saved), qPrintable(saved));
    QCOMPARE(csvRows(Trainer::lossCsvPath(config.output.folder)), int(page->lastStep()));
}

QTEST_MAIN(TestTrainPage)
#include "TestTrainPage.moc"
