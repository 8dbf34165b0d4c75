// The torch-free whole-file tools: parameter counts and file sizes predicted from the structure
// alone match real modules and real files; create and summarise round-trip; bad input and bad
// files fail with messages that name them.

#include "support/TestSupport.h"

#include "core/hypernetwork/HypernetworkFile.h"
#include "core/hypernetwork/HypernetworkTools.h"

#include <QFile>
#include <QFileInfo>
#include <QObject>
#include <QTemporaryDir>

using namespace studio;

namespace {

HypernetworkConfig makeConfig(std::vector<int> sizes, std::vector<double> layers,
                              const QString& activation)
{
    HypernetworkConfig config;
    config.name = QStringLiteral("tools");
    config.sizes = std::move(sizes);
    config.layerStructure = std::move(layers);
    config.activation = activation;
    config.dropoutStructure.assign(config.layerStructure.size(), 0.0);
    config.dropoutStructureIntegerItems.assign(config.layerStructure.size(), true);
    config.initSeed = 3;
    return config;
}

// The structures the tests walk through: every switch that adds or removes a parameter.
void addStructureRows()
{
    QTest::addColumn<HypernetworkConfig>("config");

    QTest::addRow("webui default") << makeConfig({768, 320, 640, 1280}, {1, 2, 1}, "linear");
    QTest::addRow("sd2 sizes") << makeConfig({1024, 320}, {1, 1.5, 1}, "relu");

    HypernetworkConfig layerNorm = makeConfig({12, 20}, {1, 2, 1}, "relu");
    layerNorm.layerNorm = true;
    QTest::addRow("layer norm") << layerNorm;

    HypernetworkConfig deep = makeConfig({33, 20}, {1, 2, 2, 1}, "swish");
    deep.layerNorm = true;
    deep.useDropout = true;
    deep.dropoutStructure = {0, 0.3, 0.3, 0};
    QTest::addRow("deep with dropout") << deep;

    // int(20 * 0.35) == 7, int(33 * 0.35) == 11: widths truncate like Python's int().
    QTest::addRow("truncated widths") << makeConfig({20, 33}, {1, 0.35, 1}, "tanh");

    QTest::addRow("prelu") << makeConfig({12}, {1, 2, 2, 1}, "prelu");
    HypernetworkConfig preluOutput = makeConfig({12, 20}, {1, 2, 1}, "prelu");
    preluOutput.activateOutput = true;
    preluOutput.layerNorm = true;
    QTest::addRow("prelu, activate output") << preluOutput;

    HypernetworkConfig none = makeConfig({12}, {1, 3, 1}, "linear");
    none.activation.reset();
    QTest::addRow("no activation") << none;

    HypernetworkConfig residual = makeConfig({12, 20}, {1, 1.5, 1}, "prelu");
    residual.skipConnection = true;
    residual.layerNorm = true;
    residual.writeExtensionKeys = true;
    QTest::addRow("skip connection") << residual;

    HypernetworkConfig upsample = residual;
    upsample.upsampleLinear = QStringLiteral("Linear");
    QTest::addRow("skip connection, linear upsample") << upsample;
}

} // namespace

Q_DECLARE_METATYPE(studio::HypernetworkConfig)

class TestHypernetworkTools : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testParameterCountMatchesBuiltModules_data() { addStructureRows(); }
    void testParameterCountMatchesBuiltModules();
    void testFileSizeEstimateIsCloseToTheRealFile_data() { addStructureRows(); }
    void testFileSizeEstimateIsCloseToTheRealFile();
    void testCreateThenSummarizeRoundTrips();
    void testCreateRefusesAnInvalidConfig();
    void testCreateNamesAnUnwritableFolder();
    void testSummarizeNamesMissingAndDamagedFiles();
};

void TestHypernetworkTools::testParameterCountMatchesBuiltModules()
{
    QFETCH(HypernetworkConfig, config);
    const Hypernetwork hypernetwork = Hypernetwork::create(config);
    QCOMPARE(countParameters(config), hypernetwork.parameterCount());
}

void TestHypernetworkTools::testFileSizeEstimateIsCloseToTheRealFile()
{
    QFETCH(HypernetworkConfig, config);
    QTemporaryDir dir;
    const QString path = dir.filePath(config.name + QStringLiteral(".pt"));
    const HypernetworkSummary summary = createHypernetworkFile(config, path);

    const int64_t estimate = estimateFileBytes(config);
    const int64_t actual = QFileInfo(path).size();
    QCOMPARE(summary.fileBytes, actual);
    // "Within a few kilobytes", and for the small files also within a fraction of their size.
    const int64_t tolerance = std::min<int64_t>(1024, std::max<int64_t>(256, actual / 10));
    QVERIFY2(std::abs(estimate - actual) <= tolerance,
             qPrintable(QStringLiteral("estimate %1, file %2 bytes").arg(estimate).arg(actual)));
}

void TestHypernetworkTools::testCreateThenSummarizeRoundTrips()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("style.pt"));
    HypernetworkConfig config = makeConfig({12, 20}, {1, 2, 1}, "relu");
    config.name = QStringLiteral("style");
    config.layerNorm = true;
    config.useDropout = true;
    config.dropoutStructure = {0, 0.3, 0};
    config.dropoutStructureIntegerItems.clear();
    config.weightInit = WeightInit::KaimingNormal;

    const HypernetworkSummary created = createHypernetworkFile(config, path);
    QCOMPARE(created.path, path);
    QCOMPARE(created.parameterCount, countParameters(config));
    QCOMPARE(created.shortHash, fileShortHash(path));
    QCOMPARE(created.shortHash.size(), 10);

    const HypernetworkSummary read = summarizeHypernetworkFile(path);
    QCOMPARE(read.path, path);
    QCOMPARE(read.parameterCount, created.parameterCount);
    QCOMPARE(read.fileBytes, created.fileBytes);
    QCOMPARE(read.shortHash, created.shortHash);
    QCOMPARE(read.config.name, QStringLiteral("style"));
    QCOMPARE(read.config.sizes, (std::vector<int>{12, 20}));
    QCOMPARE(read.config.layerStructure, (std::vector<double>{1, 2, 1}));
    QCOMPARE(*read.config.activation, QStringLiteral("relu"));
    QVERIFY(read.config.layerNorm);
    QVERIFY(read.config.useDropout);
    QCOMPARE(read.config.dropoutStructure, (std::vector<double>{0, 0.3, 0}));
    QCOMPARE(read.config.weightInit, WeightInit::KaimingNormal);
    QCOMPARE(read.config.step, int64_t{0});

    // The seed fixes the start: a second file with the same seed has the same bytes.
    const QString again = dir.filePath(QStringLiteral("style2.pt"));
    config.name = QStringLiteral("style");
    createHypernetworkFile(config, again);
    const auto a = loadHypernetwork(path).parameters();
    const auto b = loadHypernetwork(again).parameters();
    QCOMPARE(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        QVERIFY(at::equal(a[i], b[i]));
    }
}

void TestHypernetworkTools::testCreateRefusesAnInvalidConfig()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("bad.pt"));
    HypernetworkConfig config = makeConfig({12}, {1, 2, 2, 1}, "relu");
    config.useDropout = true;
    config.dropoutStructure = {0, 0.3, 0};
    const QString message = test::errorMessageOf([&] { createHypernetworkFile(config, path); });
    QVERIFY2(message.contains(QStringLiteral("dropout structure '0, 0.3, 0' has 3 entries")),
             qPrintable(message));
    QVERIFY(!QFile::exists(path));

    // The webui checks only when loading; creating also wants the last dropout to be 0.
    config.dropoutStructure = {0, 0.3, 0.3, 0.3};
    const QString last = test::errorMessageOf([&] { createHypernetworkFile(config, path); });
    QVERIFY2(last.contains(QStringLiteral("must start and end with 0")), qPrintable(last));
    QVERIFY(!QFile::exists(path));
}

void TestHypernetworkTools::testCreateNamesAnUnwritableFolder()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("missing/folder/x.pt"));
    const QString message = test::errorMessageOf([&] {
        createHypernetworkFile(makeConfig({12}, {1, 2, 1}, "relu"), path);
    });
    QVERIFY2(!message.isEmpty(), "writing into a missing folder must fail");
    QVERIFY2(message.contains(QStringLiteral("x.pt")), qPrintable(message));
}

void TestHypernetworkTools::testSummarizeNamesMissingAndDamagedFiles()
{
    QTemporaryDir dir;
    const QString missing = dir.filePath(QStringLiteral("nothing.pt"));
    const QString notFound = test::errorMessageOf([&] { summarizeHypernetworkFile(missing); });
    QVERIFY2(notFound.contains(QStringLiteral("nothing.pt")), qPrintable(notFound));

    const QString damaged = dir.filePath(QStringLiteral("damaged.pt"));
    QFile file(damaged);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(QByteArray(500, 'x'));
    file.close();
    const QString broken = test::errorMessageOf([&] { summarizeHypernetworkFile(damaged); });
    QVERIFY2(broken.contains(QStringLiteral("damaged.pt")), qPrintable(broken));
}

QTEST_GUILESS_MAIN(TestHypernetworkTools)
#include "TestHypernetworkTools.moc"
