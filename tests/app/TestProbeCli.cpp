// `hnstudio probe` and `hnstudio info` on Stable Diffusion checkpoints: every component computes
// what the original code computed, and the model description says what was read and assumed.

#include "support/CliRunner.h"
#include "support/TestSupport.h"

#include "core/io/SafeTensors.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>
#include <QTemporaryDir>

using namespace studio;

namespace {

// Runs `hnstudio probe COMPONENT --model MODEL --input INPUT --output OUT extra...` and returns
// the output file (empty on failure, with the message recorded).
QString probe(const QTemporaryDir& dir, const QString& component, const QString& model,
              const QString& input, const QStringList& extra = {})
{
    const QString output = dir.filePath(component + QStringLiteral("-out.safetensors"));
    QFile::remove(output);
    const test::CliRun run = test::runHnstudio(
        QStringList{QStringLiteral("probe"), component, QStringLiteral("--model"),
                    test::referencePath(model), QStringLiteral("--input"),
                    test::referencePath(input), QStringLiteral("--output"), output} +
        extra);
    if (run.exitCode != 0) {
        qWarning().noquote() << run.err;
        return QString();
    }
    return output;
}

void compare(const QString& outputFile, const QString& outputName, const QString& referenceFile,
             const QString& referenceName)
{
    QVERIFY(!outputFile.isEmpty());
    const io::SafeTensorsFile actual = io::SafeTensorsFile::open(outputFile);
    const io::SafeTensorsFile expected =
        io::SafeTensorsFile::open(test::referencePath(referenceFile));
    STUDIO_COMPARE_TENSORS(actual.tensor(outputName), expected.tensor(referenceName), 1e-4, 1e-4);
}

QJsonObject infoJson(const QStringList& arguments)
{
    const test::CliRun run = test::runHnstudio(
        QStringList{QStringLiteral("info"), QStringLiteral("--json")} + arguments);
    if (run.exitCode != 0) {
        qWarning().noquote() << run.err;
    }
    return QJsonDocument::fromJson(run.out.toUtf8()).object();
}

} // namespace

class TestProbeCli : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testUnet();
    void testVae();
    void testTextEncoders();
    void testFullModelComponents();
    void testInfoReadsTheConfig();
    void testInfoDetectsWithoutConfig();
    void testMissingInputTensorIsNamed();

private:
    QTemporaryDir m_dir;
};

void TestProbeCli::testUnet()
{
    const QString forward = QStringLiteral("unet/unet_sd1_forward.safetensors");
    compare(probe(m_dir, QStringLiteral("unet"),
                  QStringLiteral("unet/unet_sd1_weights.safetensors"), forward),
            QStringLiteral("out"), forward, QStringLiteral("out"));
    compare(probe(m_dir, QStringLiteral("unet"),
                  QStringLiteral("unet/unet_sd1_weights.safetensors"), forward,
                  {QStringLiteral("--hypernetwork"),
                   test::referencePath(QStringLiteral("unet/unet_sd1_hn_relu_121_ln.pt")),
                   QStringLiteral("--hypernetwork"),
                   test::referencePath(QStringLiteral("unet/unet_sd1_hn2_tanh_1p5.pt")) +
                       QStringLiteral(":0.5")}),
            QStringLiteral("out"), forward, QStringLiteral("out_hn_chain"));

    const QString sd2 = QStringLiteral("unet/unet_sd2_forward.safetensors");
    compare(probe(m_dir, QStringLiteral("unet"),
                  QStringLiteral("unet/unet_sd2_weights.safetensors"), sd2,
                  {QStringLiteral("--hypernetwork"),
                   test::referencePath(QStringLiteral("unet/unet_sd2_hn_swish_0p5.pt")) +
                       QStringLiteral(":0.5")}),
            QStringLiteral("out"), sd2, QStringLiteral("out_hn_m0.5"));
}

void TestProbeCli::testVae()
{
    const QString io = QStringLiteral("vae/vae_io.safetensors");
    const QString encoded = probe(m_dir, QStringLiteral("vae-encode"),
                                  QStringLiteral("vae/vae_weights.safetensors"), io);
    compare(encoded, QStringLiteral("posterior_mean"), io, QStringLiteral("posterior_mean"));
    compare(encoded, QStringLiteral("posterior_logvar"), io, QStringLiteral("posterior_logvar"));
    compare(probe(m_dir, QStringLiteral("vae-decode"),
                  QStringLiteral("vae/vae_weights.safetensors"), io),
            QStringLiteral("decoded"), io, QStringLiteral("decoded"));
}

void TestProbeCli::testTextEncoders()
{
    const QString io = QStringLiteral("clip_text/clip_text_io.safetensors");
    const QString sd1 = QStringLiteral("clip_text/clip_text_sd1_layout.safetensors");
    compare(probe(m_dir, QStringLiteral("text-encoder"), sd1, io), QStringLiteral("context"), io,
            QStringLiteral("last_hidden_state"));
    compare(probe(m_dir, QStringLiteral("text-encoder"), sd1, io,
                  {QStringLiteral("--clip-skip"), QStringLiteral("2")}),
            QStringLiteral("context"), io, QStringLiteral("penultimate_ln"));
    compare(probe(m_dir, QStringLiteral("text-encoder"),
                  QStringLiteral("clip_text/clip_text_sd2_layout.safetensors"), io),
            QStringLiteral("context"), io, QStringLiteral("gelu_penultimate_ln"));
}

void TestProbeCli::testFullModelComponents()
{
    const QString model = QStringLiteral("full/tiny_sd1.safetensors");
    const QString io = QStringLiteral("full/pipeline_io.safetensors");
    compare(probe(m_dir, QStringLiteral("text-encoder"), model, io), QStringLiteral("context"), io,
            QStringLiteral("context"));

    // The pipeline's image -> posterior mean through the single-file checkpoint's VAE.
    compare(probe(m_dir, QStringLiteral("vae-encode"), model, io), QStringLiteral("posterior_mean"),
            io, QStringLiteral("posterior_mean"));
}

void TestProbeCli::testInfoReadsTheConfig()
{
    const QJsonObject full =
        infoJson({test::referencePath(QStringLiteral("full/tiny_sd1.safetensors"))});
    QCOMPARE(full.value(QStringLiteral("family")).toString(), QStringLiteral("SD1"));
    QCOMPARE(full.value(QStringLiteral("parameterization")).toString(), QStringLiteral("eps"));
    QVERIFY(full.value(QStringLiteral("config_source"))
                .toString()
                .contains(QStringLiteral("tiny_sd1.yaml")));
    QCOMPARE(full.value(QStringLiteral("components")).toArray().size(), 3);
    QCOMPARE(
        full.value(QStringLiteral("unet")).toObject().value(QStringLiteral("num_heads")).toInt(),
        4);

    const QJsonObject sd2 =
        infoJson({test::referencePath(QStringLiteral("unet/unet_sd2_weights.safetensors"))});
    QCOMPARE(sd2.value(QStringLiteral("family")).toString(), QStringLiteral("SD2"));
    QCOMPARE(sd2.value(QStringLiteral("parameterization")).toString(), QStringLiteral("v"));
}

void TestProbeCli::testInfoDetectsWithoutConfig()
{
    // Without its YAML the checkpoint is described from its weights, and the guesses are listed.
    const QString copy = m_dir.filePath(QStringLiteral("bare.safetensors"));
    QFile::remove(copy);
    QVERIFY(QFile::copy(test::referencePath(QStringLiteral("unet/unet_sd1_weights.safetensors")),
                        copy));
    const QJsonObject info = infoJson({copy});
    QVERIFY(
        info.value(QStringLiteral("config_source")).toString().contains(QStringLiteral("weights")));
    const QJsonObject unet = info.value(QStringLiteral("unet")).toObject();
    QCOMPARE(unet.value(QStringLiteral("model_channels")).toInt(), 32);
    QCOMPARE(unet.value(QStringLiteral("channel_mult")).toArray(), (QJsonArray{1, 2}));
    QCOMPARE(unet.value(QStringLiteral("attention_resolutions")).toArray(), (QJsonArray{1, 2}));
    QCOMPARE(unet.value(QStringLiteral("context_dim")).toInt(), 48);
    QCOMPARE(unet.value(QStringLiteral("num_res_blocks")).toInt(), 1);
    QVERIFY(!info.value(QStringLiteral("assumed")).toArray().isEmpty());
}

void TestProbeCli::testMissingInputTensorIsNamed()
{
    const test::CliRun run = test::runHnstudio(
        {QStringLiteral("probe"), QStringLiteral("vae-decode"), QStringLiteral("--model"),
         test::referencePath(QStringLiteral("vae/vae_weights.safetensors")),
         QStringLiteral("--input"),
         test::referencePath(QStringLiteral("unet/unet_sd1_forward.safetensors")),
         QStringLiteral("--output"), m_dir.filePath(QStringLiteral("x.safetensors"))});
    QCOMPARE(run.exitCode, 1);
    QVERIFY2(run.err.contains(QStringLiteral("no tensor 'z'")), qPrintable(run.err));
}

QTEST_GUILESS_MAIN(TestProbeCli)
#include "TestProbeCli.moc"
