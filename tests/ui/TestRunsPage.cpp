// The run browser on run folders that `hnstudio train` made with the tiny reference model: the
// runs of a folder are listed, a reopened run plots every row of its loss.csv and shows its
// previews and run.json, which loads into the Train page as the same run. Also the plots'
// smoothing and tooltips, and the gallery's enlarge and compare dialogs.

#include "support/CliRunner.h"
#include "support/TrainingFixture.h"

#include "core/train/RunConfig.h"
#include "core/train/Trainer.h"
#include "ui/LearningRatePlot.h"
#include "ui/LossPlot.h"
#include "ui/PreviewGallery.h"
#include "ui/RunsPage.h"
#include "ui/TrainPage.h"

#include <QDialog>
#include <QLabel>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

using namespace studio;
using namespace studio::test;
using studio::ui::RunsPage;

namespace {

struct CsvRow
{
    double step = 0.0;
    double loss = 0.0;
    double rate = 0.0;
};

std::vector<CsvRow> lossRows(const QString& runFolder)
{
    std::vector<CsvRow> rows;
    const QString csv = readText(Trainer::lossCsvPath(runFolder));
    for (const QString& line : csv.split(QLatin1Char('\n'), Qt::SkipEmptyParts).mid(1)) {
        const QStringList cells = line.split(QLatin1Char(','));
        rows.push_back({cells[0].toDouble(), cells[3].toDouble(), cells[4].toDouble()});
    }
    return rows;
}

} // namespace

class TestRunsPage : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testListsTheRunsOfAFolder();
    void testReopensARun();
    void testLoadsTheRunIntoTheTrainPage();
    void testRefusesAFolderThatIsNoRun();
    void testGalleryEnlargesAndCompares();
    void testLossPlotSmoothsAndDescribesPoints();

private:
    void train(const QString& name, int steps, int previewEvery);

    QTemporaryDir m_dir;
    QString m_images;
    QString m_runs;
};

void TestRunsPage::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QVERIFY(m_dir.isValid());
    m_images = m_dir.filePath(QStringLiteral("images"));
    writeImageFolder(m_images, squareImages(4), /*withCorruptFile=*/false);
    m_runs = m_dir.filePath(QStringLiteral("runs"));
    QVERIFY(QDir().mkpath(QDir(m_runs).filePath(QStringLiteral("not-a-run"))));
    train(QStringLiteral("quiet"), 4, 0);
    train(QStringLiteral("previewed"), 6, 2);
}

void TestRunsPage::train(const QString& name, int steps, int previewEvery)
{
    QJsonObject json = tinyRunJson(m_images, QDir(m_runs).filePath(name));
    setField(json, QStringLiteral("training"), QStringLiteral("steps"), steps);
    setField(json, QStringLiteral("output"), QStringLiteral("preview_every"), previewEvery);
    const QString runFile = writeJson(m_dir.filePath(name + QStringLiteral(".json")), json);
    const CliRun run = runHnstudio({QStringLiteral("train"), runFile});
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
}

void TestRunsPage::testListsTheRunsOfAFolder()
{
    RunsPage page;
    page.setRunsFolder(m_runs);
    QStringList runs = page.listedRuns();
    runs.sort();
    QCOMPARE(runs, QStringList({QDir(m_runs).filePath(QStringLiteral("previewed")),
                                QDir(m_runs).filePath(QStringLiteral("quiet"))}));
}

void TestRunsPage::testReopensARun()
{
    const QString folder = QDir(m_runs).filePath(QStringLiteral("previewed"));
    RunsPage page;
    QSignalSpy opened(&page, &RunsPage::runOpened);
    page.openRun(folder);
    QVERIFY(opened.wait(30000));
    QCOMPARE(page.openedRun(), folder);

    // Every row of loss.csv is a point of both plots, with its values.
    const std::vector<CsvRow> rows = lossRows(folder);
    QCOMPARE(rows.size(), size_t(6));
    const ui::LossPlot* loss = page.lossPlot();
    const ui::LearningRatePlot* rate = page.learningRatePlot();
    QCOMPARE(loss->pointCount(), int(rows.size()));
    QCOMPARE(rate->usedPointCount(), int(rows.size()));
    for (int i = 0; i < int(rows.size()); ++i) {
        QCOMPARE(loss->stepAt(i), rows[size_t(i)].step);
        QVERIFY(loss->rawLoss(i) == rows[size_t(i)].loss);
        QVERIFY(rate->usedRate(i) == rows[size_t(i)].rate);
    }
    // The planned curve comes from the run's own run.json.
    QCOMPARE(rate->plannedPointCount(), 6);
    QCOMPARE(rate->plannedRate(0), 1e-3);

    // The axes hold every point, the rates from 0 (a constant rate is not a line on the frame).
    for (int i = 0; i < int(rows.size()); ++i) {
        QVERIFY(loss->xAxis->range().contains(rows[size_t(i)].step));
        QVERIFY(loss->yAxis->range().contains(rows[size_t(i)].loss));
    }
    QCOMPARE(rate->yAxis->range().lower, 0.0);
    QVERIFY(rate->yAxis->range().upper > 1e-3 && rate->yAxis->range().upper < 1.2e-3);

    // The previews of images/, by step.
    const ui::PreviewGallery* gallery = page.previewGallery();
    QCOMPARE(gallery->count(), 3);
    for (int i = 0; i < 3; ++i) {
        QCOMPARE(gallery->stepAt(i), int64_t(2 * (i + 1)));
    }
    QTRY_COMPARE(gallery->loadedCount(), 3);

    QCOMPARE(page.runJsonText(), readText(Trainer::runJsonPath(folder)));
    QVERIFY2(page.statusText().contains(QStringLiteral("6 steps")), qPrintable(page.statusText()));
}

void TestRunsPage::testLoadsTheRunIntoTheTrainPage()
{
    const QString folder = QDir(m_runs).filePath(QStringLiteral("quiet"));
    RunsPage runs;
    ui::TrainPage train;
    connect(&runs, &RunsPage::loadRunRequested, &train, &ui::TrainPage::openRunFile);
    QSignalSpy requested(&runs, &RunsPage::loadRunRequested);
    QSignalSpy opened(&runs, &RunsPage::runOpened);
    runs.openRun(folder);
    QVERIFY(opened.wait(30000));

    auto* load = runs.findChild<QPushButton*>(QStringLiteral("loadRunButton"));
    QVERIFY(load != nullptr && load->isEnabled());
    load->click();
    QCOMPARE(requested.size(), 1);
    QCOMPARE(requested.front().front().toString(), Trainer::runJsonPath(folder));
    QVERIFY2(train.runConfig().has_value(), qPrintable(train.validationMessage()));
    QVERIFY(*train.runConfig() == readRunConfig(Trainer::runJsonPath(folder)));
}

void TestRunsPage::testRefusesAFolderThatIsNoRun()
{
    RunsPage page;
    page.openRun(QDir(m_runs).filePath(QStringLiteral("not-a-run")));
    QVERIFY2(page.statusText().contains(QStringLiteral("is not a run folder")),
             qPrintable(page.statusText()));
    QVERIFY(page.openedRun().isEmpty());
}

void TestRunsPage::testGalleryEnlargesAndCompares()
{
    const QString images = QDir(m_runs).filePath(QStringLiteral("previewed/images"));
    ui::PreviewGallery gallery;
    gallery.addPreview(2, QDir(images).filePath(QStringLiteral("tinyhn-2.png")));
    gallery.addPreview(4, QDir(images).filePath(QStringLiteral("tinyhn-4.png")));
    gallery.addPreview(6, QDir(images).filePath(QStringLiteral("tinyhn-6.png")));
    QTRY_COMPARE(gallery.loadedCount(), 3);

    QDialog* enlarged = gallery.showEnlarged(1);
    const QList<QLabel*> one = enlarged->findChildren<QLabel*>(QStringLiteral("previewImage"));
    QCOMPARE(one.size(), 1);
    QVERIFY(!one.front()->pixmap().isNull());
    QVERIFY(enlarged->windowTitle().contains(QStringLiteral("4")));
    enlarged->close();

    auto* compare = gallery.findChild<QPushButton*>(QStringLiteral("compareButton"));
    QVERIFY(!compare->isEnabled());
    gallery.setSelection({0, 2});
    QVERIFY(compare->isEnabled());
    compare->click();
    auto* compared = gallery.findChild<QDialog*>(QStringLiteral("comparedPreviews"));
    QVERIFY(compared != nullptr);
    const QList<QLabel*> two = compared->findChildren<QLabel*>(QStringLiteral("previewImage"));
    QCOMPARE(two.size(), 2);
    QVERIFY(!two[0]->pixmap().isNull() && !two[1]->pixmap().isNull());
    QVERIFY(compared->windowTitle().contains(QStringLiteral("2")) &&
            compared->windowTitle().contains(QStringLiteral("6")));
}

void TestRunsPage::testLossPlotSmoothsAndDescribesPoints()
{
    ui::LossPlot plot;
    plot.setSmoothing(0.5);
    plot.setPoints({1, 2, 3}, {1.0, 2.0, 3.0});
    // A moving average corrected for its start at 0: (0.5 * 1) / (1 - 0.5) for the first.
    QCOMPARE(plot.smoothedLoss(0), 1.0);
    QCOMPARE(plot.smoothedLoss(1), 1.25 / 0.75);
    QCOMPARE(plot.smoothedLoss(2), 2.125 / 0.875);

    plot.addPoint(4, 4.0);
    QCOMPARE(plot.pointCount(), 4);
    QCOMPARE(plot.smoothedLoss(3), 3.0625 / 0.9375);

    const QString text = plot.describeNearest(2.2);
    QCOMPARE(text, QStringLiteral("step 2\nloss 2\nsmoothed 1.66667"));

    plot.setSmoothing(0.0);
    QCOMPARE(plot.smoothedLoss(2), 3.0);
    plot.clear();
    QCOMPARE(plot.pointCount(), 0);
    QVERIFY(plot.describeNearest(1).isEmpty());
}

QTEST_MAIN(TestRunsPage)
#include "TestRunsPage.moc"
