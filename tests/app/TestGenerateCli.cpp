// `hnstudio probe sample` and `hnstudio generate` on the consistent tiny SD1 model (reference
// README section 9): the sampler reproduces the original DDIM run through the command line,
// generation is seeded, hypernetworks stack in order, PNGs carry the webui's infotext, and bad
// options are named.

#include "support/CliRunner.h"
#include "support/TestSupport.h"

#include "core/io/PngFile.h"
#include "core/io/SafeTensors.h"

#include <QDir>
#include <QFile>
#include <QObject>
#include <QTemporaryDir>

using namespace studio;

namespace {

QString model()
{
    return test::referencePath(QStringLiteral("full/tiny_sd1.safetensors"));
}

QString hypernetwork()
{
    return test::referencePath(QStringLiteral("full/tiny_sd1_hn.pt"));
}

// The tiny model at 64x64 with few steps; `extra` adds or overrides options.
QStringList generateArguments(const QString& output, const QStringList& extra = {})
{
    return QStringList{
               QStringLiteral("generate"),
               QStringLiteral("--model"),
               model(),
               QStringLiteral("--tokenizer"),
               test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz")),
               QStringLiteral("--prompt"),
               QStringLiteral("a photo of a cat sitting on a red sofa"),
               QStringLiteral("--negative"),
               QStringLiteral("blurry"),
               QStringLiteral("--steps"),
               QStringLiteral("3"),
               QStringLiteral("--width"),
               QStringLiteral("64"),
               QStringLiteral("--height"),
               QStringLiteral("64"),
               QStringLiteral("--output"),
               output} +
           extra;
}

// Runs generate into `file` and returns its pixels (undefined on failure, with the message).
at::Tensor generatePixels(const QString& file, const QStringList& extra)
{
    QFile::remove(file);
    const test::CliRun run = test::runHnstudio(generateArguments(file, extra));
    if (run.exitCode != 0) {
        qWarning().noquote() << run.err;
        return at::Tensor();
    }
    return io::readImageRgb(file);
}

QString seed(int value)
{
    return QString::number(value);
}

} // namespace

class TestGenerateCli : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testProbeSampleMatchesReference_data();
    void testProbeSampleMatchesReference();
    void testGenerateIsSeeded();
    void testHypernetworkStack();
    void testDefaultSizeIsTheModels();
    void testPngCarriesParameters();
    void testFolderOutputIsNumbered();
    void testBadArguments_data();
    void testBadArguments();
    void testMissingPromptIsUsage();

private:
    QTemporaryDir m_dir;
};

void TestGenerateCli::testProbeSampleMatchesReference_data()
{
    QTest::addColumn<QStringList>("extra");
    QTest::addColumn<QString>("suffix");
    QTest::addRow("plain") << QStringList() << QString();
    QTest::addRow("hypernetwork") << QStringList{QStringLiteral("--hypernetwork"), hypernetwork()}
                                  << QStringLiteral("_hn");
}

void TestGenerateCli::testProbeSampleMatchesReference()
{
    QFETCH(QStringList, extra);
    QFETCH(QString, suffix);

    // pipeline_io holds x_T, context and uncond_context under the names probe sample reads.
    const QString reference = test::referencePath(QStringLiteral("full/pipeline_io.safetensors"));
    const QString output = m_dir.filePath(QStringLiteral("sample%1.safetensors").arg(suffix));
    const test::CliRun run = test::runHnstudio(
        QStringList{QStringLiteral("probe"), QStringLiteral("sample"), QStringLiteral("--model"),
                    model(), QStringLiteral("--input"), reference, QStringLiteral("--output"),
                    output, QStringLiteral("--sampler"), QStringLiteral("ddim"),
                    QStringLiteral("--steps"), QStringLiteral("8"), QStringLiteral("--cfg"),
                    QStringLiteral("5")} +
        extra);
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));

    const io::SafeTensorsFile actual = io::SafeTensorsFile::open(output);
    const io::SafeTensorsFile expected = io::SafeTensorsFile::open(reference);
    STUDIO_COMPARE_TENSORS(actual.tensor(QStringLiteral("latent")),
                           expected.tensor(QStringLiteral("ddim_latent") + suffix), 1e-3, 1e-4);
    STUDIO_COMPARE_TENSORS(actual.tensor(QStringLiteral("image")),
                           expected.tensor(QStringLiteral("ddim_image") + suffix), 3e-4, 1e-4);
}

void TestGenerateCli::testGenerateIsSeeded()
{
    const QString file = m_dir.filePath(QStringLiteral("seeded.png"));
    const at::Tensor first = generatePixels(file, {QStringLiteral("--seed"), seed(1)});
    QVERIFY(first.defined());
    QCOMPARE(test::shapeOf(first), QStringLiteral("[64, 64, 3]"));
    const at::Tensor again = generatePixels(file, {QStringLiteral("--seed"), seed(1)});
    QVERIFY(again.defined());
    QVERIFY(at::equal(first, again));
    const at::Tensor other = generatePixels(file, {QStringLiteral("--seed"), seed(2)});
    QVERIFY(other.defined());
    QVERIFY(!at::equal(first, other));

    // DDIM with eta 0 is seeded only through the start noise.
    const QStringList ddim = {QStringLiteral("--sampler"), QStringLiteral("ddim"),
                              QStringLiteral("--seed"), seed(1)};
    const at::Tensor ddimFirst = generatePixels(file, ddim);
    QVERIFY(ddimFirst.defined());
    QVERIFY(at::equal(ddimFirst, generatePixels(file, ddim)));
    QVERIFY(!at::equal(ddimFirst, first));
}

void TestGenerateCli::testDefaultSizeIsTheModels()
{
    // tiny_sd1.yaml: image_size 16 latents, VAE factor 2, so 32x32; never the webui's 512.
    const QString file = m_dir.filePath(QStringLiteral("native.png"));
    QStringList arguments = generateArguments(file, {QStringLiteral("--seed"), seed(4)});
    for (const QString& option : {QStringLiteral("--width"), QStringLiteral("--height")}) {
        const qsizetype at = arguments.indexOf(option);
        arguments.remove(at, 2);
    }
    const test::CliRun run = test::runHnstudio(arguments);
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
    QCOMPARE(test::shapeOf(io::readImageRgb(file)), QStringLiteral("[32, 32, 3]"));
    QVERIFY(io::readPngText(file).front().second.contains(QStringLiteral("Size: 32x32")));
}

void TestGenerateCli::testHypernetworkStack()
{
    const QString file = m_dir.filePath(QStringLiteral("stack.png"));
    const QStringList common = {QStringLiteral("--seed"), seed(3)};
    const at::Tensor none = generatePixels(file, common);
    const at::Tensor alone = generatePixels(
        file, common + QStringList{QStringLiteral("--hypernetwork"), hypernetwork()});
    const at::Tensor stacked = generatePixels(
        file, common + QStringList{QStringLiteral("--hypernetwork"), hypernetwork() + ":1",
                                   QStringLiteral("--hypernetwork"), hypernetwork() + ":0"});
    QVERIFY(none.defined() && alone.defined() && stacked.defined());
    // Strength 0 leaves the context unchanged (x + 0 * f(x)), so the stack is the first alone.
    QVERIFY(at::equal(alone, stacked));
    QVERIFY(!at::equal(alone, none));
}

void TestGenerateCli::testPngCarriesParameters()
{
    const QString file = m_dir.filePath(QStringLiteral("parameters.png"));
    QVERIFY(generatePixels(file, {QStringLiteral("--seed"), seed(12), QStringLiteral("--cfg"),
                                  QStringLiteral("6.5"), QStringLiteral("--hypernetwork"),
                                  hypernetwork() + ":0.75"})
                .defined());
    QString parameters;
    for (const auto& [keyword, text] : io::readPngText(file)) {
        if (keyword == QLatin1String("parameters")) {
            parameters = text;
        }
    }
    QCOMPARE(parameters,
             QStringLiteral("a photo of a cat sitting on a red sofa\nNegative prompt: blurry\n"
                            "Steps: 3, Sampler: Euler a, CFG scale: 6.5, Seed: 12, Size: 64x64, "
                            "Model hash: 58e82c0cd7, Model: tiny_sd1, Hypernet: tiny_sd1_hn, "
                            "Hypernet strength: 0.75"));
}

void TestGenerateCli::testFolderOutputIsNumbered()
{
    const QString folder = m_dir.filePath(QStringLiteral("images"));
    const QStringList batch = {QStringLiteral("--seed"), seed(20), QStringLiteral("--batch"),
                               QStringLiteral("2")};
    test::CliRun run = test::runHnstudio(generateArguments(folder, batch));
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
    run = test::runHnstudio(generateArguments(folder, batch));
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
    QCOMPARE(QDir(folder).entryList(QDir::Files, QDir::Name),
             (QStringList{QStringLiteral("00000-20.png"), QStringLiteral("00001-21.png"),
                          QStringLiteral("00002-20.png"), QStringLiteral("00003-21.png")}));
    QVERIFY(run.out.contains(QStringLiteral("00003-21.png")));
}

void TestGenerateCli::testBadArguments_data()
{
    QTest::addColumn<QStringList>("extra");
    QTest::addColumn<int>("exitCode");
    QTest::addColumn<QString>("message");

    QTest::addRow("unknown sampler")
        << QStringList{QStringLiteral("--sampler"), QStringLiteral("plms")} << 2
        << QStringLiteral("--sampler: sampler 'plms'");
    QTest::addRow("zero steps") << QStringList{QStringLiteral("--steps"), QStringLiteral("0")} << 2
                                << QStringLiteral("--steps");
    QTest::addRow("seed not a number")
        << QStringList{QStringLiteral("--seed"), QStringLiteral("abc")} << 2
        << QStringLiteral("--seed");
    QTest::addRow("negative eta") << QStringList{QStringLiteral("--eta"), QStringLiteral("-1")} << 2
                                  << QStringLiteral("--eta");
    QTest::addRow("unknown device")
        << QStringList{QStringLiteral("--device"), QStringLiteral("tpu")} << 2
        << QStringLiteral("device 'tpu'");
    QTest::addRow("width not a multiple of the latent factor")
        << QStringList{QStringLiteral("--width"), QStringLiteral("63")} << 1
        << QStringLiteral("width: 63");
    QTest::addRow("missing hypernetwork file")
        << QStringList{QStringLiteral("--hypernetwork"), QStringLiteral("/nonexistent/x.pt:0.5")}
        << 1 << QStringLiteral("--hypernetwork: '/nonexistent/x.pt'");
}

void TestGenerateCli::testBadArguments()
{
    QFETCH(QStringList, extra);
    QFETCH(int, exitCode);
    QFETCH(QString, message);

    const QString file = m_dir.filePath(QStringLiteral("bad.png"));
    const test::CliRun run = test::runHnstudio(generateArguments(file, extra));
    QCOMPARE(run.exitCode, exitCode);
    QVERIFY2(run.err.contains(message), qPrintable(run.err));
    QVERIFY(!QFile::exists(file));
}

void TestGenerateCli::testMissingPromptIsUsage()
{
    const test::CliRun run =
        test::runHnstudio({QStringLiteral("generate"), QStringLiteral("--model"), model(),
                           QStringLiteral("--output"), m_dir.filePath(QStringLiteral("none.png"))});
    QCOMPARE(run.exitCode, 2);
    QVERIFY2(run.err.contains(QStringLiteral("--prompt is required")), qPrintable(run.err));
}

QTEST_GUILESS_MAIN(TestGenerateCli)
#include "TestGenerateCli.moc"
