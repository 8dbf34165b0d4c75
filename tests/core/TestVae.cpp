// The ldm AutoencoderKL port: config detection from the weights, key names that mirror the
// checkpoint, encode (posterior mean/logvar/std) and decode against the original's outputs, the
// full tiny model's latents and decoded samples, and the errors for files that do not fit.

#include "support/TestSupport.h"

#include "core/diffusion/Vae.h"
#include "core/io/SafeTensors.h"
#include "core/io/TensorSource.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/utils.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>
#include <QRegularExpression>
#include <QSet>
#include <QTemporaryDir>

#include <functional>

using namespace studio;

namespace {

constexpr double kAtol = 1e-4;
constexpr double kRtol = 1e-4;

using NamedTensors = std::vector<std::pair<QString, at::Tensor>>;

QString vaeWeightsPath()
{
    return test::referencePath(QStringLiteral("vae/vae_weights.safetensors"));
}

QString vaeIoPath()
{
    return test::referencePath(QStringLiteral("vae/vae_io.safetensors"));
}

QString tinyCheckpointPath()
{
    return test::referencePath(QStringLiteral("full/tiny_sd1.safetensors"));
}

std::vector<int> intList(const QJsonArray& array)
{
    std::vector<int> values;
    for (const QJsonValue& value : array) {
        values.push_back(value.toInt());
    }
    return values;
}

// Every tensor of `path`, passed through `edit` (which may rename by returning another name,
// or drop by returning a null QString).
NamedTensors editedTensors(const QString& path,
                           const std::function<QString(const QString&, at::Tensor&)>& edit)
{
    const auto file = io::SafeTensorsFile::open(path);
    NamedTensors tensors;
    for (const QString& name : file.names()) {
        at::Tensor tensor = file.tensor(name).clone();
        const QString newName = edit(name, tensor);
        if (!newName.isNull()) {
            tensors.emplace_back(newName, tensor);
        }
    }
    return tensors;
}

// The reference VAE weights without one key or with one tensor replaced.
QString writeVariant(const QTemporaryDir& dir, const QString& fileName,
                     const std::function<QString(const QString&, at::Tensor&)>& edit)
{
    const QString path = dir.filePath(fileName);
    io::writeSafeTensors(path, editedTensors(vaeWeightsPath(), edit));
    return path;
}

} // namespace

class TestVae : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testFindsPrefix();
    void testDetectsConfig();
    void testDetectsTinyCheckpointConfig();
    void testParameterNamesMirrorCheckpoint();
    void testEncodeMatchesReference();
    void testDecodeMatchesReference();
    void testPosteriorSample();
    void testFullModelLatent();
    void testFullModelDecodesSamples();
    void testStandaloneFileWithFlatAttentionWeights();
    void testDetectsAttentionLevels();
    void testMissingKeyIsReported();
    void testWrongShapeIsReported();
    void testNotAVaeIsReported();
    void testRejectsWrongInputChannels();

private:
    std::unique_ptr<io::TensorSource> m_weights;
    std::optional<io::SafeTensorsFile> m_io;
    AutoencoderKL m_vae{nullptr};
};

void TestVae::initTestCase()
{
    at::set_num_threads(1);
    torch::manual_seed(0);
    m_weights = io::openTensorSource(vaeWeightsPath());
    m_io = io::SafeTensorsFile::open(vaeIoPath());
    m_vae = loadVae(*m_weights, QString::fromLatin1(kVaeCheckpointPrefix));
}

void TestVae::testFindsPrefix()
{
    QCOMPARE(findVaePrefix(*m_weights), QStringLiteral("first_stage_model."));
    const auto checkpoint = io::openTensorSource(tinyCheckpointPath());
    QCOMPARE(findVaePrefix(*checkpoint), QStringLiteral("first_stage_model."));
}

void TestVae::testDetectsConfig()
{
    const VaeConfig config = detectVaeConfig(*m_weights, QStringLiteral("first_stage_model."));

    // Against the ddconfig the weights were made with (their metadata).
    const auto file = io::SafeTensorsFile::open(vaeWeightsPath());
    const QJsonObject ddconfig =
        QJsonDocument::fromJson(file.metadata().at(QStringLiteral("ddconfig")).toUtf8()).object();
    QCOMPARE(config.ch, ddconfig.value(QStringLiteral("ch")).toInt());
    QCOMPARE(config.chMult, intList(ddconfig.value(QStringLiteral("ch_mult")).toArray()));
    QCOMPARE(config.numResBlocks, ddconfig.value(QStringLiteral("num_res_blocks")).toInt());
    QCOMPARE(config.zChannels, ddconfig.value(QStringLiteral("z_channels")).toInt());
    QCOMPARE(config.inChannels, ddconfig.value(QStringLiteral("in_channels")).toInt());
    QCOMPARE(config.outChannels, ddconfig.value(QStringLiteral("out_ch")).toInt());
    QCOMPARE(config.doubleZ, ddconfig.value(QStringLiteral("double_z")).toBool());
    QVERIFY(config.attnResolutions.empty());
    QCOMPARE(config.embedDim, file.metadata().at(QStringLiteral("embed_dim")).toInt());

    // Not in the weights: SD's values.
    QCOMPARE(config.scaleFactor, 0.18215);
    QCOMPARE(config.downsamplingFactor(), 2);
    QCOMPARE(m_vae->config().chMult, config.chMult);
}

void TestVae::testDetectsTinyCheckpointConfig()
{
    const auto checkpoint = io::openTensorSource(tinyCheckpointPath());
    const VaeConfig config = detectVaeConfig(*checkpoint, QStringLiteral("first_stage_model."));

    QCOMPARE(config.ch, 32);
    QCOMPARE(config.chMult, (std::vector<int>{1, 1}));
    QCOMPARE(config.numResBlocks, 1);
    QCOMPARE(config.zChannels, 4);
    QCOMPARE(config.embedDim, 4);
}

void TestVae::testParameterNamesMirrorCheckpoint()
{
    // Every module tensor is a file key and every VAE key of the file is used.
    QSet<QString> moduleKeys;
    for (const auto& item : m_vae->named_parameters(/*recurse=*/true)) {
        moduleKeys.insert(QStringLiteral("first_stage_model.") +
                          QString::fromStdString(item.key()));
    }
    QVERIFY(m_vae->named_buffers(/*recurse=*/true).is_empty());

    const QStringList names = m_weights->names();
    QCOMPARE(moduleKeys, QSet<QString>(names.begin(), names.end()));
    QVERIFY(
        moduleKeys.contains(QStringLiteral("first_stage_model.decoder.up.1.upsample.conv.weight")));
    QVERIFY(moduleKeys.contains(QStringLiteral("first_stage_model.encoder.mid.attn_1.q.weight")));
}

void TestVae::testEncodeMatchesReference()
{
    torch::NoGradGuard noGrad;
    const at::Tensor image = m_io->tensor(QStringLiteral("image"));

    const at::Tensor encoderOut = m_vae->encoder(image);
    STUDIO_COMPARE_TENSORS(encoderOut, m_io->tensor(QStringLiteral("encoder_out")), kAtol, kRtol);
    STUDIO_COMPARE_TENSORS(m_vae->quant_conv(encoderOut), m_io->tensor(QStringLiteral("moments")),
                           kAtol, kRtol);

    const VaePosterior posterior = m_vae->encode(image);
    STUDIO_COMPARE_TENSORS(posterior.mean, m_io->tensor(QStringLiteral("posterior_mean")), kAtol,
                           kRtol);
    STUDIO_COMPARE_TENSORS(posterior.logvar, m_io->tensor(QStringLiteral("posterior_logvar")),
                           kAtol, kRtol);
    STUDIO_COMPARE_TENSORS(posterior.std(), m_io->tensor(QStringLiteral("posterior_std")), kAtol,
                           kRtol);
}

void TestVae::testDecodeMatchesReference()
{
    torch::NoGradGuard noGrad;
    const at::Tensor z = m_io->tensor(QStringLiteral("z"));

    STUDIO_COMPARE_TENSORS(m_vae->post_quant_conv(z),
                           m_io->tensor(QStringLiteral("post_quant_conv_out")), kAtol, kRtol);
    STUDIO_COMPARE_TENSORS(m_vae->decode(z), m_io->tensor(QStringLiteral("decoded")), kAtol, kRtol);
    STUDIO_COMPARE_TENSORS(m_vae->decode(m_io->tensor(QStringLiteral("posterior_mean"))),
                           m_io->tensor(QStringLiteral("decoded_posterior_mean")), kAtol, kRtol);
}

void TestVae::testPosteriorSample()
{
    VaePosterior posterior;
    posterior.mean = at::arange(8, at::kFloat).reshape({1, 2, 2, 2});
    posterior.logvar = at::full({1, 2, 2, 2}, std::log(0.25));

    at::Generator first = at::detail::createCPUGenerator(/*seed_val=*/7);
    at::Generator second = at::detail::createCPUGenerator(/*seed_val=*/7);
    const at::Tensor expected =
        posterior.mean + 0.5 * at::randn({1, 2, 2, 2}, second, at::TensorOptions(at::kFloat));
    STUDIO_COMPARE_TENSORS(posterior.sample(first), expected, 1e-6, 0.0);
}

void TestVae::testFullModelLatent()
{
    torch::NoGradGuard noGrad;
    const auto checkpoint = io::openTensorSource(tinyCheckpointPath());
    AutoencoderKL vae = loadVae(*checkpoint, findVaePrefix(*checkpoint));
    const auto pipeline = io::SafeTensorsFile::open(
        test::referencePath(QStringLiteral("full/pipeline_io.safetensors")));

    // webui's "deterministic" latent sampling: latent = scale_factor * posterior mean.
    const VaePosterior posterior = vae->encode(pipeline.tensor(QStringLiteral("image")));
    const at::Tensor expectedMean = pipeline.tensor(QStringLiteral("posterior_mean"));
    STUDIO_COMPARE_TENSORS(posterior.mean, expectedMean, kAtol, kRtol);
    STUDIO_COMPARE_TENSORS(vae->scaleLatent(posterior.mean),
                           pipeline.tensor(QStringLiteral("latent")), kAtol, kRtol);
    // Bit-identical scaling, as the README states for the original.
    QVERIFY(at::equal(vae->scaleLatent(expectedMean), pipeline.tensor(QStringLiteral("latent"))));
}

void TestVae::testFullModelDecodesSamples()
{
    torch::NoGradGuard noGrad;
    const auto checkpoint = io::openTensorSource(tinyCheckpointPath());
    AutoencoderKL vae = loadVae(*checkpoint, findVaePrefix(*checkpoint));
    const auto pipeline = io::SafeTensorsFile::open(
        test::referencePath(QStringLiteral("full/pipeline_io.safetensors")));

    // decode_first_stage on the stored DDIM samples (|latent| up to ~30).
    for (const QString& suffix : {QString(), QStringLiteral("_hn")}) {
        const at::Tensor image =
            vae->decodeLatent(pipeline.tensor(QStringLiteral("ddim_latent") + suffix));
        STUDIO_COMPARE_TENSORS(image, pipeline.tensor(QStringLiteral("ddim_image") + suffix), kAtol,
                               kRtol);
    }
}

void TestVae::testStandaloneFileWithFlatAttentionWeights()
{
    // A standalone VAE file (no prefix) as some converters write it: 2-D attention weights.
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = writeVariant(
        dir, QStringLiteral("flat.safetensors"), [](const QString& name, at::Tensor& t) {
            static const QRegularExpression attention(
                QStringLiteral("attn_1\\.(q|k|v|proj_out)\\.weight$"));
            if (attention.match(name).hasMatch()) {
                t = t.reshape({t.size(0), t.size(1)});
            }
            return name.mid(static_cast<int>(qstrlen(kVaeCheckpointPrefix)));
        });
    const auto source = io::openTensorSource(path);
    QCOMPARE(source->shape(QStringLiteral("encoder.mid.attn_1.q.weight")).size(), size_t(2));

    QCOMPARE(findVaePrefix(*source), QString());
    AutoencoderKL vae = loadVae(*source, findVaePrefix(*source));
    torch::NoGradGuard noGrad;
    const VaePosterior posterior = vae->encode(m_io->tensor(QStringLiteral("image")));
    STUDIO_COMPARE_TENSORS(posterior.mean, m_io->tensor(QStringLiteral("posterior_mean")), kAtol,
                           kRtol);
}

void TestVae::testDetectsAttentionLevels()
{
    // A non-SD VAE with attention after every block of the first level (side 32 of 32).
    VaeConfig config;
    config.ch = 32;
    config.chMult = {1, 2};
    config.numResBlocks = 1;
    config.resolution = 32;
    config.attnResolutions = {32};
    AutoencoderKL original(config);
    original->eval();

    NamedTensors tensors;
    for (const auto& item : original->named_parameters(/*recurse=*/true)) {
        tensors.emplace_back(QString::fromStdString(item.key()), item.value().detach());
    }
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("attention.safetensors"));
    io::writeSafeTensors(path, tensors);
    const auto source = io::openTensorSource(path);
    QVERIFY(source->contains(QStringLiteral("encoder.down.0.attn.0.q.weight")));
    QVERIFY(source->contains(QStringLiteral("decoder.up.0.attn.1.q.weight")));

    // The resolution is not in the weights: the levels come back relative to the default.
    const VaeConfig detected = detectVaeConfig(*source, QString());
    QCOMPARE(detected.attnResolutions, (std::vector<int>{detected.resolution}));
    QVERIFY(detected.encoderLevelHasAttention(0));
    QVERIFY(!detected.encoderLevelHasAttention(1));
    QVERIFY(detected.decoderLevelHasAttention(0));
    QVERIFY(!detected.decoderLevelHasAttention(1));

    torch::NoGradGuard noGrad;
    AutoencoderKL loaded = loadVae(*source, QString());
    const at::Tensor image = m_io->tensor(QStringLiteral("image"));
    QVERIFY(at::equal(loaded->encode(image).mean, original->encode(image).mean));
    const at::Tensor z = m_io->tensor(QStringLiteral("z"));
    QVERIFY(at::equal(loaded->decode(z), original->decode(z)));

    // A config without those blocks must not silently drop them.
    VaeConfig withoutAttention = detected;
    withoutAttention.attnResolutions.clear();
    STUDIO_VERIFY_ERROR(loadVae(*source, QString(), withoutAttention),
                        "'encoder.down.0.attn.0.norm.weight' is not part of the VAE");
}

void TestVae::testMissingKeyIsReported()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString prefix = QString::fromLatin1(kVaeCheckpointPrefix);

    const QString withoutBias = writeVariant(
        dir, QStringLiteral("no_bias.safetensors"), [](const QString& name, at::Tensor&) {
            return name.endsWith(QLatin1String("decoder.conv_out.bias")) ? QString() : name;
        });
    STUDIO_VERIFY_ERROR(loadVae(*io::openTensorSource(withoutBias), prefix),
                        "has no tensor 'first_stage_model.decoder.conv_out.bias'");

    // A key that config detection itself needs.
    const QString withoutPostQuant = writeVariant(
        dir, QStringLiteral("no_post_quant.safetensors"), [](const QString& name, at::Tensor&) {
            return name.contains(QLatin1String("post_quant_conv.weight")) ? QString() : name;
        });
    STUDIO_VERIFY_ERROR(loadVae(*io::openTensorSource(withoutPostQuant), prefix),
                        "no tensor 'first_stage_model.post_quant_conv.weight'");

    // Config given explicitly: a second ResnetBlock per level that the file does not have.
    VaeConfig deeper = m_vae->config();
    deeper.numResBlocks = 2;
    STUDIO_VERIFY_ERROR(loadVae(*m_weights, prefix, deeper),
                        "'first_stage_model.encoder.down.0.block.1.norm1.weight'");
}

void TestVae::testWrongShapeIsReported()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = writeVariant(
        dir, QStringLiteral("bad_shape.safetensors"), [](const QString& name, at::Tensor& t) {
            if (name.endsWith(QLatin1String("encoder.mid.attn_1.k.weight"))) {
                t = at::zeros({64, 64, 3, 3});
            }
            return name;
        });
    const auto source = io::openTensorSource(path);

    STUDIO_VERIFY_ERROR(loadVae(*source, QString::fromLatin1(kVaeCheckpointPrefix)),
                        "'first_stage_model.encoder.mid.attn_1.k.weight' has shape [64, 64, 3, 3]");
    STUDIO_VERIFY_ERROR(loadVae(*source, QString::fromLatin1(kVaeCheckpointPrefix)),
                        "bad_shape.safetensors");
}

void TestVae::testNotAVaeIsReported()
{
    const auto source = io::openTensorSource(vaeIoPath());
    STUDIO_VERIFY_ERROR(findVaePrefix(*source), "holds no VAE");
    STUDIO_VERIFY_ERROR(detectVaeConfig(*source, QString()), "'encoder.conv_in.weight'");

    VaeConfig odd;
    odd.ch = 48; // GroupNorm(32) cannot split 48 channels
    STUDIO_VERIFY_ERROR(AutoencoderKL{odd}, "multiple of 32");
}

void TestVae::testRejectsWrongInputChannels()
{
    torch::NoGradGuard noGrad;
    STUDIO_VERIFY_ERROR(m_vae->encode(at::zeros({1, 4, 32, 32})), "[B, 3, H, W]");
    STUDIO_VERIFY_ERROR(m_vae->decode(at::zeros({1, 3, 16, 16})), "[B, 4, h, w]");
}

QTEST_GUILESS_MAIN(TestVae)
#include "TestVae.moc"
