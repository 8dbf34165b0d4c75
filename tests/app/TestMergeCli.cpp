// `hnstudio merge` as a user runs it: weights after a colon or an equal average, the name from
// --name or the output's stem, the weighted sum in the file, and every mistake named with the
// right exit status and no file written.

#include "support/CliRunner.h"
#include "support/TestSupport.h"

#include "core/hypernetwork/HypernetworkFile.h"

#include <QFile>
#include <QFileInfo>
#include <QObject>
#include <QTemporaryDir>

using namespace studio;

namespace {

HypernetworkConfig makeConfig(std::vector<double> layers = {1, 2, 1})
{
    HypernetworkConfig config;
    config.sizes = {32, 64};
    config.layerStructure = std::move(layers);
    config.activation = QStringLiteral("relu");
    config.dropoutStructure.assign(config.layerStructure.size(), 0.0);
    config.weightInit = WeightInit::KaimingNormal;
    return config;
}

QString writeHypernetwork(const QString& path, HypernetworkConfig config, uint64_t seed)
{
    config.name = QFileInfo(path).completeBaseName();
    config.initSeed = seed;
    saveHypernetwork(Hypernetwork::create(config), path);
    return path;
}

// Checks every parameter of `merged` against sum_i weights[i] * inputs[i], in float64.
bool isWeightedSum(const QString& merged, const QStringList& inputs,
                   const std::vector<double>& weights)
{
    const std::vector<at::Tensor> output = loadHypernetwork(merged).parameters();
    std::vector<at::Tensor> expected(output.size());
    for (int i = 0; i < inputs.size(); ++i) {
        const std::vector<at::Tensor> parameters = loadHypernetwork(inputs[i]).parameters();
        for (size_t j = 0; j < output.size(); ++j) {
            const at::Tensor term = parameters[j].detach().to(at::kDouble) * weights[size_t(i)];
            expected[j] = expected[j].defined() ? expected[j] + term : term;
        }
    }
    for (size_t j = 0; j < output.size(); ++j) {
        if (test::toleranceExcess(output[j].detach(), expected[j], 1e-7, 1e-6) > 0) {
            return false;
        }
    }
    return true;
}

} // namespace

class TestMergeCli : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testWeightedMerge();
    void testEqualAverageByDefault();
    void testNameOption();
    void testWeightsNotSummingToOneAreNoted();
    void testUsageErrors_data();
    void testUsageErrors();
    void testFailures_data();
    void testFailures();
    void testHelp();

private:
    QString path(const QString& name) const { return m_dir.filePath(name); }

    QTemporaryDir m_dir;
    QString m_a;
    QString m_b;
    QString m_c;
    QString m_wide;
};

void TestMergeCli::initTestCase()
{
    QVERIFY(m_dir.isValid());
    m_a = writeHypernetwork(path(QStringLiteral("a.pt")), makeConfig(), 1);
    m_b = writeHypernetwork(path(QStringLiteral("b.pt")), makeConfig(), 2);
    m_c = writeHypernetwork(path(QStringLiteral("c.pt")), makeConfig(), 3);
    m_wide = writeHypernetwork(path(QStringLiteral("wide.pt")), makeConfig({1, 4, 1}), 4);
}

void TestMergeCli::testWeightedMerge()
{
    const QString out = path(QStringLiteral("weighted.pt"));
    const test::CliRun run =
        test::runHnstudio({QStringLiteral("merge"), out, m_a + QStringLiteral(":0.2"),
                           m_b + QStringLiteral(":0.3"), m_c + QStringLiteral(":0.5")});
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
    QVERIFY2(run.out.contains(QStringLiteral("merged 3 hypernetworks into '%1'").arg(out)),
             qPrintable(run.out));
    QVERIFY(isWeightedSum(out, {m_a, m_b, m_c}, {0.2, 0.3, 0.5}));
    QVERIFY(!isWeightedSum(out, {m_a, m_b, m_c}, {0.3, 0.2, 0.5}));
    QCOMPARE(loadHypernetwork(out).config().name, QStringLiteral("weighted"));
    QCOMPARE(loadHypernetwork(out).config().step, int64_t(0));
    QVERIFY2(!run.err.contains(QStringLiteral("note")), qPrintable(run.err));
}

void TestMergeCli::testEqualAverageByDefault()
{
    const QString out = path(QStringLiteral("average.pt"));
    const test::CliRun run = test::runHnstudio({QStringLiteral("merge"), out, m_a, m_b});
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
    QVERIFY(isWeightedSum(out, {m_a, m_b}, {0.5, 0.5}));
}

void TestMergeCli::testNameOption()
{
    const QString out = path(QStringLiteral("named.pt"));
    const test::CliRun run = test::runHnstudio({QStringLiteral("merge"), QStringLiteral("--name"),
                                                QStringLiteral("my merge!"), out, m_a, m_b});
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
    QCOMPARE(loadHypernetwork(out).config().name, QStringLiteral("my merge"));

    // An existing output needs --force.
    const test::CliRun again =
        test::runHnstudio({QStringLiteral("merge"), QStringLiteral("--force"), out,
                           m_a + QStringLiteral(":1"), m_b + QStringLiteral(":0")});
    QVERIFY2(again.exitCode == 0, qPrintable(again.err));
    QVERIFY(isWeightedSum(out, {m_a, m_b}, {1.0, 0.0}));
    QCOMPARE(loadHypernetwork(out).config().name, QStringLiteral("named"));
}

void TestMergeCli::testWeightsNotSummingToOneAreNoted()
{
    const QString out = path(QStringLiteral("scaled.pt"));
    const test::CliRun run = test::runHnstudio(
        {QStringLiteral("merge"), out, m_a + QStringLiteral(":1"), m_b + QStringLiteral(":0.5")});
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
    QVERIFY2(run.err.contains(QStringLiteral("the weights sum to 1.5, not 1")),
             qPrintable(run.err));
    QVERIFY(isWeightedSum(out, {m_a, m_b}, {1.0, 0.5}));
}

void TestMergeCli::testUsageErrors_data()
{
    QTest::addColumn<QStringList>("arguments");
    QTest::addColumn<QString>("message");

    const QString out = path(QStringLiteral("usage.pt"));
    QTest::addRow("one input") << QStringList{out, m_a}
                               << QStringLiteral("at least two hypernetworks");
    QTest::addRow("no arguments") << QStringList{} << QStringLiteral("at least two hypernetworks");
    QTest::addRow("some weights") << QStringList{out, m_a + QStringLiteral(":0.5"), m_b}
                                  << QStringLiteral("give a weight to every input");
    QTest::addRow("infinite weight") << QStringList{out, m_a + QStringLiteral(":inf"), m_b}
                                     << QStringLiteral("the weight should be a finite number");
    QTest::addRow("output exists")
        << QStringList{m_c, m_a, m_b} << QStringLiteral("exists; use --force");
    QTest::addRow("empty name") << QStringList{QStringLiteral("--name"), QStringLiteral("!!"), out,
                                               m_a, m_b}
                                << QStringLiteral("--name: the name has no letters or digits");
    QTest::addRow("unknown option") << QStringList{QStringLiteral("--weights"), out, m_a, m_b}
                                    << QStringLiteral("Unknown option");
}

void TestMergeCli::testUsageErrors()
{
    QFETCH(QStringList, arguments);
    QFETCH(QString, message);

    const QByteArray before = [&] {
        QFile file(m_c);
        return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
    }();
    const test::CliRun run = test::runHnstudio(QStringList{QStringLiteral("merge")} + arguments);
    QCOMPARE(run.exitCode, 2);
    QVERIFY2(run.err.contains(message), qPrintable(run.err));
    QVERIFY(run.err.contains(QStringLiteral("hnstudio merge --help")));
    QVERIFY(!QFile::exists(path(QStringLiteral("usage.pt"))));
    QFile file(m_c);
    QVERIFY(file.open(QIODevice::ReadOnly));
    QCOMPARE(file.readAll(), before);
}

void TestMergeCli::testFailures_data()
{
    QTest::addColumn<QStringList>("inputs");
    QTest::addColumn<QString>("message");

    QTest::addRow("different structure")
        << QStringList{m_a, m_wide}
        << QStringLiteral("'wide.pt' has layer structure 1, 4, 1 where 'a.pt' has 1, 2, 1");
    QTest::addRow("missing input")
        << QStringList{m_a + QStringLiteral(":0.5"),
                       path(QStringLiteral("missing.pt")) + QStringLiteral(":0.5")}
        << QStringLiteral("'%1' is not a file").arg(path(QStringLiteral("missing.pt")));
}

void TestMergeCli::testFailures()
{
    QFETCH(QStringList, inputs);
    QFETCH(QString, message);

    const QString out = path(QStringLiteral("failed.pt"));
    const test::CliRun run = test::runHnstudio(QStringList{QStringLiteral("merge"), out} + inputs);
    QCOMPARE(run.exitCode, 1);
    QVERIFY2(run.err.contains(message), qPrintable(run.err));
    QVERIFY(!QFile::exists(out));
}

void TestMergeCli::testHelp()
{
    const test::CliRun run = test::runHnstudio({QStringLiteral("merge"), QStringLiteral("--help")});
    QCOMPARE(run.exitCode, 0);
    QVERIFY(run.out.startsWith(QStringLiteral("Usage: hnstudio merge")));
    QVERIFY(run.out.contains(QStringLiteral("without weights each of the N\ninputs gets 1/N")));
    QVERIFY(run.out.contains(QStringLiteral("--name")));

    const test::CliRun overview = test::runHnstudio({QStringLiteral("--help")});
    QVERIFY(overview.out.contains(
        QStringLiteral("merge hypernetworks of the same structure into one file")));
}

QTEST_GUILESS_MAIN(TestMergeCli)
#include "TestMergeCli.moc"
