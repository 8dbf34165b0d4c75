// The hnstudio command line, run as a user runs it: exit codes, messages, files, and the
// reference numbers of the original implementation.

#include "support/CliRunner.h"
#include "support/TestSupport.h"

#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/SafeTensors.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>
#include <QTemporaryDir>

using namespace studio;

namespace {

using Run = test::CliRun;

Run hnstudio(const QStringList& arguments)
{
    return test::runHnstudio(arguments);
}

QJsonArray readJsonArray(const QString& path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? QJsonDocument::fromJson(file.readAll()).array()
                                          : QJsonArray();
}

// Parses "step,lr" CSV lines after the header.
std::vector<std::pair<qint64, double>> parseCurve(const QString& csv)
{
    std::vector<std::pair<qint64, double>> rows;
    const QStringList lines = csv.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const QStringList fields = lines[i].split(QLatin1Char(','));
        rows.emplace_back(fields.value(0).toLongLong(), fields.value(1).toDouble());
    }
    return rows;
}

QString number(const QJsonValue& value)
{
    return QString::number(value.toDouble(), 'g', 17);
}

} // namespace

class TestCli : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testOverviewAndVersion();
    void testEverySubcommandExplainsItsOptions_data();
    void testEverySubcommandExplainsItsOptions();
    void testCreateWritesTheRequestedHypernetwork();
    void testCreateRefusesBadInput_data();
    void testCreateRefusesBadInput();
    void testInfoReportsDamagedFiles();
    void testLrCurveReproducesCosineReference();
    void testLrCurveReproducesStringReference();
    void testProbeHypernetworkReproducesReference_data();
    void testProbeHypernetworkReproducesReference();
    void testProbeHypernetworkChain();
    void testTokenizeReproducesReference();
};

void TestCli::testOverviewAndVersion()
{
    const Run help = hnstudio({QStringLiteral("--help")});
    QCOMPARE(help.exitCode, 0);
    for (const char* command : {"create", "info", "lr-curve", "probe"}) {
        QVERIFY(help.out.contains(QLatin1String(command)));
    }
    const Run version = hnstudio({QStringLiteral("--version")});
    QCOMPARE(version.exitCode, 0);
    QVERIFY(version.out.contains(QStringLiteral("LibTorch")));
    // The build tree's demo, found the way the studio finds it.
    QVERIFY2(version.out.contains(QStringLiteral("resources/demo")), qPrintable(version.out));

    const Run unknown = hnstudio({QStringLiteral("frobnicate")});
    QCOMPARE(unknown.exitCode, 2);
    QVERIFY(unknown.err.contains(QStringLiteral("unknown command 'frobnicate'")));
}

void TestCli::testEverySubcommandExplainsItsOptions_data()
{
    QTest::addColumn<QString>("command");
    QTest::addColumn<QStringList>("options");
    QTest::addRow("create") << "create"
                            << QStringList{
                                   "--name",       "--sizes",   "--layers",          "--activation",
                                   "--layer-norm", "--dropout", "--activate-output", "--init",
                                   "--init-std",   "--seed",    "--skip-connection", "--info",
                                   "--force"};
    QTest::addRow("info") << "info" << QStringList{"--json"};
    QTest::addRow("lr-curve") << "lr-curve"
                              << QStringList{"--steps",       "--start",      "--lr",
                                             "--cosine",      "--max-lr",     "--min-lr",
                                             "--cycle-steps", "--cycle-mult", "--warmup",
                                             "--gamma",       "--csv"};
    QTest::addRow("probe") << "probe"
                           << QStringList{"--hypernetwork", "--strength", "--input", "--output"};
}

void TestCli::testEverySubcommandExplainsItsOptions()
{
    QFETCH(QString, command);
    QFETCH(QStringList, options);
    const Run help = hnstudio({command, QStringLiteral("--help")});
    QCOMPARE(help.exitCode, 0);
    QVERIFY2(help.out.contains(QStringLiteral("hnstudio ") + command), qPrintable(help.out));
    const QStringList lines = help.out.split(QLatin1Char('\n'));
    for (const QString& option : options) {
        // The option's line carries a description, not only the option's name.
        const auto line = std::find_if(lines.begin(), lines.end(), [&](const QString& text) {
            return text.trimmed().startsWith(option) ||
                   text.contains(QStringLiteral(", ") + option);
        });
        QVERIFY2(line != lines.end(), qPrintable(option + QStringLiteral(" missing")));
        QVERIFY2(line->simplified().size() > option.size() + 12, qPrintable(*line));
    }
}

void TestCli::testCreateWritesTheRequestedHypernetwork()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("style.pt"));
    const Run create = hnstudio(
        {QStringLiteral("create"), path, QStringLiteral("--sizes"), QStringLiteral("12, 20"),
         QStringLiteral("--layers"), QStringLiteral("1, 2, 1"), QStringLiteral("--activation"),
         QStringLiteral("relu"), QStringLiteral("--layer-norm"), QStringLiteral("--dropout"),
         QStringLiteral("0, 0.3, 0"), QStringLiteral("--init"), QStringLiteral("KaimingNormal"),
         QStringLiteral("--seed"), QStringLiteral("5")});
    QVERIFY2(create.exitCode == 0, qPrintable(create.err));

    const Hypernetwork hypernetwork = loadHypernetwork(path);
    const HypernetworkConfig& config = hypernetwork.config();
    QCOMPARE(config.name, QStringLiteral("style"));
    QCOMPARE(config.sizes, (std::vector<int>{12, 20}));
    QCOMPARE(*config.activation, QStringLiteral("relu"));
    QVERIFY(config.layerNorm && config.useDropout);
    QCOMPARE(config.dropoutStructure, (std::vector<double>{0, 0.3, 0}));
    QCOMPARE(config.weightInit, WeightInit::KaimingNormal);

    const Run info = hnstudio({QStringLiteral("info"), path, QStringLiteral("--json")});
    QCOMPARE(info.exitCode, 0);
    const QJsonObject json = QJsonDocument::fromJson(info.out.toUtf8()).object();
    QCOMPARE(json.value(QStringLiteral("parameters")).toDouble(),
             static_cast<double>(hypernetwork.parameterCount()));
    QCOMPARE(json.value(QStringLiteral("shorthash")).toString(), fileShortHash(path));
    QCOMPARE(json.value(QStringLiteral("dropout_structure")).toArray().at(1).toDouble(), 0.3);

    const Run text = hnstudio({QStringLiteral("info"), path});
    QVERIFY(text.out.contains(QStringLiteral("KaimingNormal")));

    // The same seed gives the same start.
    const QString again = dir.filePath(QStringLiteral("again.pt"));
    hnstudio({QStringLiteral("create"), again, QStringLiteral("--sizes"), QStringLiteral("12, 20"),
              QStringLiteral("--activation"), QStringLiteral("relu"),
              QStringLiteral("--layer-norm"), QStringLiteral("--dropout"),
              QStringLiteral("0, 0.3, 0"), QStringLiteral("--init"),
              QStringLiteral("KaimingNormal"), QStringLiteral("--seed"), QStringLiteral("5")});
    const std::vector<at::Tensor> a = hypernetwork.parameters();
    const std::vector<at::Tensor> b = loadHypernetwork(again).parameters();
    for (size_t i = 0; i < a.size(); ++i) {
        QVERIFY(at::equal(a[i], b[i]));
    }
}

void TestCli::testCreateRefusesBadInput_data()
{
    QTest::addColumn<QStringList>("options");
    QTest::addColumn<QString>("expected");
    QTest::addRow("dropout length")
        << QStringList{"--dropout", "0, 0.3"} << "dropout structure '0, 0.3' has 2 entries";
    QTest::addRow("layer structure")
        << QStringList{"--layers", "2, 1"} << "must start and end with 1";
    QTest::addRow("activation") << QStringList{"--activation", "wobble"}
                                << "unknown activation 'wobble'";
    QTest::addRow("not a number") << QStringList{"--init-std", "big"} << "--init-std: 'big'";
    QTest::addRow("sizes") << QStringList{"--sizes", "768, x"} << "--sizes: 'x'";
}

void TestCli::testCreateRefusesBadInput()
{
    QFETCH(QStringList, options);
    QFETCH(QString, expected);
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("bad.pt"));
    const Run run = hnstudio(QStringList{QStringLiteral("create"), path} + options);
    QCOMPARE(run.exitCode, 2);
    QVERIFY2(run.err.contains(expected), qPrintable(run.err));
    QVERIFY(!QFile::exists(path));

    // An existing file is kept unless --force is given.
    QVERIFY(hnstudio({QStringLiteral("create"), path}).exitCode == 0);
    const Run again = hnstudio({QStringLiteral("create"), path});
    QCOMPARE(again.exitCode, 2);
    QVERIFY(again.err.contains(QStringLiteral("--force")));
}

void TestCli::testInfoReportsDamagedFiles()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("broken.pt"));
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(QByteArray(1000, 'x'));
    file.close();
    const Run run = hnstudio({QStringLiteral("info"), path});
    QCOMPARE(run.exitCode, 1);
    QVERIFY2(run.err.contains(QStringLiteral("broken.pt")), qPrintable(run.err));
}

void TestCli::testLrCurveReproducesCosineReference()
{
    const QJsonArray runs = readJsonArray(
        test::referencePath(QStringLiteral("lr_schedules/cosine_annealing_warmup_restarts.json")));
    QVERIFY(!runs.isEmpty());
    for (const QJsonValue& value : runs) {
        const QJsonObject run = value.toObject();
        const QJsonObject params = run.value(QStringLiteral("params")).toObject();
        const qint64 start = run.value(QStringLiteral("start_step")).toInteger(0);
        const Run curve = hnstudio(
            {QStringLiteral("lr-curve"), QStringLiteral("--csv"), QStringLiteral("--cosine"),
             QStringLiteral("--steps"), number(run.value(QStringLiteral("steps"))),
             QStringLiteral("--start"), QString::number(start), QStringLiteral("--max-lr"),
             number(params.value(QStringLiteral("max_lr"))), QStringLiteral("--min-lr"),
             number(params.value(QStringLiteral("min_lr"))), QStringLiteral("--cycle-steps"),
             number(params.value(QStringLiteral("first_cycle_steps"))),
             QStringLiteral("--cycle-mult"), number(params.value(QStringLiteral("cycle_mult"))),
             QStringLiteral("--warmup"), number(params.value(QStringLiteral("warmup_steps"))),
             QStringLiteral("--gamma"), number(params.value(QStringLiteral("gamma")))});
        QVERIFY2(curve.exitCode == 0, qPrintable(curve.err));

        const QJsonArray expected = run.value(QStringLiteral("lrs")).toArray();
        const auto rows = parseCurve(curve.out);
        QCOMPARE(rows.size(), static_cast<size_t>(expected.size()));
        for (size_t i = 0; i < rows.size(); ++i) {
            QCOMPARE(rows[i].first, start + static_cast<qint64>(i));
            QCOMPARE(rows[i].second, expected.at(static_cast<qsizetype>(i)).toDouble());
        }
    }
}

void TestCli::testLrCurveReproducesStringReference()
{
    const QJsonArray runs = readJsonArray(
        test::referencePath(QStringLiteral("lr_schedules/webui_learn_rate_string.json")));
    QVERIFY(!runs.isEmpty());
    for (const QJsonValue& value : runs) {
        const QJsonObject run = value.toObject();
        const QJsonObject params = run.value(QStringLiteral("params")).toObject();
        const Run curve =
            hnstudio({QStringLiteral("lr-curve"), QStringLiteral("--csv"), QStringLiteral("--lr"),
                      params.value(QStringLiteral("learn_rate")).toString(),
                      QStringLiteral("--steps"), number(params.value(QStringLiteral("max_steps"))),
                      QStringLiteral("--start"), number(params.value(QStringLiteral("cur_step")))});
        QVERIFY2(curve.exitCode == 0, qPrintable(curve.err));

        // Early finish included: the curve ends where the schedule stops training.
        const QJsonArray expected = run.value(QStringLiteral("lrs")).toArray();
        const auto rows = parseCurve(curve.out);
        QCOMPARE(rows.size(), static_cast<size_t>(expected.size()));
        for (size_t i = 0; i < rows.size(); ++i) {
            QCOMPARE(rows[i].second, expected.at(static_cast<qsizetype>(i)).toDouble());
        }
    }
}

void TestCli::testProbeHypernetworkReproducesReference_data()
{
    QTest::addColumn<QString>("stem");
    QTest::addColumn<QString>("strength");
    for (const char* stem :
         {"b_relu_1221_ln_drop", "r_realsizes_relu", "x_ext_skip_swish_121_ln"}) {
        QTest::addRow("%s at 1", stem) << stem << "1";
        QTest::addRow("%s at 0.5", stem) << stem << "0.5";
    }
}

void TestCli::testProbeHypernetworkReproducesReference()
{
    QFETCH(QString, stem);
    QFETCH(QString, strength);
    QTemporaryDir dir;
    const QString reference =
        test::referencePath(QStringLiteral("hypernetworks/%1.safetensors").arg(stem));
    const QString output = dir.filePath(QStringLiteral("out.safetensors"));
    const Run run = hnstudio({QStringLiteral("probe"), QStringLiteral("hypernetwork"),
                              QStringLiteral("--hypernetwork"),
                              test::referencePath(QStringLiteral("hypernetworks/%1.pt").arg(stem)),
                              QStringLiteral("--strength"), strength, QStringLiteral("--input"),
                              reference, QStringLiteral("--output"), output});
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));

    const io::SafeTensorsFile expected = io::SafeTensorsFile::open(reference);
    const io::SafeTensorsFile actual = io::SafeTensorsFile::open(output);
    const QString suffix =
        strength == QLatin1String("1") ? QStringLiteral("_m1") : QStringLiteral("_m0.5");
    int compared = 0;
    for (const QString& name : actual.names()) {
        STUDIO_COMPARE_TENSORS(actual.tensor(name), expected.tensor(name + suffix), 1e-5, 1e-5);
        ++compared;
    }
    QVERIFY(compared >= 4);
}

void TestCli::testProbeHypernetworkChain()
{
    QTemporaryDir dir;
    const QString reference =
        test::referencePath(QStringLiteral("hypernetworks/chain.safetensors"));
    const QString output = dir.filePath(QStringLiteral("chain.safetensors"));
    const Run run = hnstudio(
        {QStringLiteral("probe"), QStringLiteral("hypernetwork"), QStringLiteral("--hypernetwork"),
         test::referencePath(QStringLiteral("hypernetworks/f_elu.pt")),
         QStringLiteral("--hypernetwork"),
         test::referencePath(QStringLiteral("hypernetworks/h_tanh_actout.pt")) +
             QStringLiteral(":0.5"),
         QStringLiteral("--input"), reference, QStringLiteral("--output"), output});
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));

    const io::SafeTensorsFile expected = io::SafeTensorsFile::open(reference);
    const io::SafeTensorsFile actual = io::SafeTensorsFile::open(output);
    STUDIO_COMPARE_TENSORS(actual.tensor(QStringLiteral("k_20")),
                           expected.tensor(QStringLiteral("k_20")), 1e-5, 1e-5);
    STUDIO_COMPARE_TENSORS(actual.tensor(QStringLiteral("v_20")),
                           expected.tensor(QStringLiteral("v_20")), 1e-5, 1e-5);

    const Run missing =
        hnstudio({QStringLiteral("probe"), QStringLiteral("hypernetwork"),
                  QStringLiteral("--input"), reference, QStringLiteral("--output"), output});
    QCOMPARE(missing.exitCode, 2);
    QVERIFY(missing.err.contains(QStringLiteral("--hypernetwork is required")));
}

void TestCli::testTokenizeReproducesReference()
{
    QFile file(test::referencePath(QStringLiteral("tokenizer/tokenizer_cases.json")));
    QVERIFY(file.open(QIODevice::ReadOnly));
    const QJsonArray cases =
        QJsonDocument::fromJson(file.readAll()).object().value(QStringLiteral("cases")).toArray();
    QVERIFY(cases.size() >= 10);

    QStringList arguments = {
        QStringLiteral("tokenize"), QStringLiteral("--vocab"),
        test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz"))};
    for (const QJsonValue& entry : cases) {
        arguments << entry.toObject().value(QStringLiteral("text")).toString();
    }
    const Run run = hnstudio(arguments);
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));

    const QJsonArray actual = QJsonDocument::fromJson(run.out.toUtf8()).array();
    QCOMPARE(actual.size(), cases.size());
    for (qsizetype i = 0; i < cases.size(); ++i) {
        QCOMPARE(actual[i].toArray(),
                 cases[i].toObject().value(QStringLiteral("input_ids_pad_eot")).toArray());
    }
}

QTEST_GUILESS_MAIN(TestCli)
#include "TestCli.moc"
