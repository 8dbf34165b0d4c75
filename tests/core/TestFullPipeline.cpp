// The consistent tiny SD1 model of the reference data (README section 9), loaded as one
// single-file checkpoint with its YAML the way a user's model is: text conditioning, VAE latent,
// noising and one hypernetwork training step match the original pipeline. The same checkpoint
// written as a .ckpt loads to the same UNet.

#include "support/TestSupport.h"

#include "core/diffusion/ModelLoader.h"
#include "core/diffusion/NoiseSchedule.h"
#include "core/diffusion/Vae.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/SafeTensors.h"
#include "core/io/TensorSource.h"
#include "core/io/TorchArchive.h"
#include "core/text/ClipTextEncoder.h"
#include "core/text/ClipTokenizer.h"

#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QObject>
#include <QTemporaryDir>

using namespace studio;

namespace {

const QString kCheckpoint = QStringLiteral("full/tiny_sd1.safetensors");

struct TinyModel
{
    std::unique_ptr<io::TensorSource> source;
    ModelConfig config;
    UNetModel unet{nullptr};
};

TinyModel loadTinyModel(const QString& path)
{
    TinyModel model;
    model.source = io::openTensorSource(path);
    model.config = resolveModelConfig(path, QString(), *model.source);
    model.unet = loadUNet(*model.source, model.config);
    return model;
}

// Rows (hidden units) of a gradient that differ beyond atol + rtol * |expected|. A ReLU unit whose
// input is within float rounding of 0 for some token takes the other branch in one of two
// correct float32 implementations, which changes that unit's whole row of the gradient and
// nothing else: every other row must match.
int64_t reluFlippedRows(const at::Tensor& actual, const at::Tensor& expected, double atol,
                        double rtol)
{
    const at::Tensor excess = (actual - expected).abs() - (atol + rtol * expected.abs());
    const at::Tensor badElements = excess > 0;
    return badElements.dim() < 2 ? badElements.sum().item<int64_t>()
                                 : badElements.any(/*dim=*/1).sum().item<int64_t>();
}

} // namespace

class TestFullPipeline : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testConfigComesFromTheYaml();
    void testTokenIds();
    void testTextConditioning();
    void testVaeLatent();
    void testTrainingStep();
    void testCkptCopyLoadsTheSameUnet();

private:
    io::SafeTensorsFile pipeline() const
    {
        return io::SafeTensorsFile::open(
            test::referencePath(QStringLiteral("full/pipeline_io.safetensors")));
    }

    TinyModel m_model;
};

void TestFullPipeline::initTestCase()
{
    at::set_num_threads(1);
    m_model = loadTinyModel(test::referencePath(kCheckpoint));
}

void TestFullPipeline::testConfigComesFromTheYaml()
{
    const ModelConfig& config = m_model.config;
    QVERIFY(config.source.contains(QStringLiteral("tiny_sd1.yaml")));
    QCOMPARE(config.family, ModelFamily::Sd1);
    QVERIFY(!config.vPrediction);
    QCOMPARE(config.unet.contextDim, 32);
    QCOMPARE(config.unet.attentionResolutions, std::vector<int>{2});
    QCOMPARE(config.textParams.value(QStringLiteral("heads")).toInt(), 4);
    QCOMPARE(config.scaleFactor, 0.18215);
}

void TestFullPipeline::testTokenIds()
{
    const io::SafeTensorsFile io = pipeline();
    const ClipTokenizer tokenizer(
        test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz")));
    const QJsonArray captions =
        QJsonDocument::fromJson(io.metadata().at(QStringLiteral("captions")).toUtf8()).array();
    QCOMPARE(captions.size(), 2);

    const at::Tensor expected = io.tensor(QStringLiteral("input_ids")).to(at::kLong);
    for (qsizetype i = 0; i < captions.size(); ++i) {
        const std::vector<int> ids = tokenizer.tokenize77(captions[i].toString());
        const at::Tensor actual = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()));
        QVERIFY(at::equal(actual, expected[i]));
    }
    const std::vector<int> empty = tokenizer.tokenize77(QString());
    QVERIFY(at::equal(at::tensor(std::vector<int64_t>(empty.begin(), empty.end())),
                      io.tensor(QStringLiteral("uncond_input_ids")).to(at::kLong)[0]));
}

void TestFullPipeline::testTextConditioning()
{
    const io::SafeTensorsFile io = pipeline();
    const DetectedClipText detected = detectClipTextEncoder(
        *m_model.source, m_model.config.textParams.value(QStringLiteral("heads")).toInt());
    ClipTextEncoder encoder =
        loadClipTextEncoder(*m_model.source, detected.config, detected.prefix);

    torch::NoGradGuard noGrad;
    for (const QString& prefix : {QString(), QStringLiteral("uncond_")}) {
        const at::Tensor ids = io.tensor(prefix + QStringLiteral("input_ids")).to(at::kLong);
        STUDIO_COMPARE_TENSORS(encoder->forward(ids), io.tensor(prefix + QStringLiteral("context")),
                               1e-4, 1e-4);
    }
}

void TestFullPipeline::testVaeLatent()
{
    const io::SafeTensorsFile io = pipeline();
    AutoencoderKL vae =
        loadVae(*m_model.source, findVaePrefix(*m_model.source), m_model.config.scaleFactor);

    torch::NoGradGuard noGrad;
    const VaePosterior posterior = vae->encode(io.tensor(QStringLiteral("image")));
    STUDIO_COMPARE_TENSORS(posterior.mean, io.tensor(QStringLiteral("posterior_mean")), 1e-4, 1e-4);
    // Deterministic latent sampling: the posterior mean times the scale factor.
    STUDIO_COMPARE_TENSORS(vae->scaleLatent(posterior.mean), io.tensor(QStringLiteral("latent")),
                           1e-4, 1e-4);
}

void TestFullPipeline::testTrainingStep()
{
    const io::SafeTensorsFile io = pipeline();
    const NoiseSchedule schedule = NoiseSchedule::linear(
        m_model.config.timesteps, m_model.config.linearStart, m_model.config.linearEnd);
    const at::Tensor timesteps = io.tensor(QStringLiteral("timesteps")).to(at::kLong);
    const at::Tensor noise = io.tensor(QStringLiteral("noise"));
    const at::Tensor xT = schedule.qSample(io.tensor(QStringLiteral("latent")), timesteps, noise);
    STUDIO_COMPARE_TENSORS(xT, io.tensor(QStringLiteral("x_t")), 1e-6, 1e-6);

    Hypernetwork hypernetwork =
        loadHypernetwork(test::referencePath(QStringLiteral("full/tiny_sd1_hn.pt")));
    hypernetwork.train(true);
    m_model.unet->runtime().hypernetworks = {&hypernetwork};
    // The shared UNet must not keep a pointer to this local once the test returns, even early.
    const std::shared_ptr<void> detach(
        nullptr, [this](void*) { m_model.unet->runtime().hypernetworks.clear(); });
    torch::optim::AdamW optimizer(hypernetwork.parameters(),
                                  torch::optim::AdamWOptions(1e-3).weight_decay(0.01));

    const at::Tensor output =
        m_model.unet->forward(xT, timesteps.to(at::kFloat), io.tensor(QStringLiteral("context")));
    STUDIO_COMPARE_TENSORS(output, io.tensor(QStringLiteral("model_output")), 1e-4, 1e-4);
    const at::Tensor target = schedule.trainingTarget(
        Parameterization::Eps, io.tensor(QStringLiteral("latent")), noise, timesteps);
    const at::Tensor loss = (output - target).pow(2).mean();
    QVERIFY(std::abs(loss.item<double>() / io.tensor(QStringLiteral("loss")).item<double>() - 1.0) <
            1e-5);

    loss.backward();
    const QJsonArray order =
        QJsonDocument::fromJson(io.metadata().at(QStringLiteral("param_order")).toUtf8()).array();
    const std::vector<at::Tensor> parameters = hypernetwork.parameters();
    QCOMPARE(parameters.size(), static_cast<size_t>(order.size()));
    double largest = 0.0;
    for (const QJsonValue& name : order) {
        largest = std::max(
            largest,
            io.tensor(QStringLiteral("grad.") + name.toString()).abs().max().item<double>());
    }
    for (qsizetype i = 0; i < order.size(); ++i) {
        const QString name = order[i].toString();
        const at::Tensor expected = io.tensor(QStringLiteral("grad.") + name);
        QVERIFY2(reluFlippedRows(parameters[static_cast<size_t>(i)].grad(), expected,
                                 1e-4 * largest, 1e-3) <= 1,
                 qPrintable(name));
    }

    optimizer.step();
    for (qsizetype i = 0; i < order.size(); ++i) {
        const QString name = order[i].toString();
        test::compareAfterAdamStep(parameters[static_cast<size_t>(i)],
                                   io.tensor(QStringLiteral("param_after.") + name),
                                   io.tensor(QStringLiteral("grad.") + name), 1e-4 * largest);
    }
}

void TestFullPipeline::testCkptCopyLoadsTheSameUnet()
{
    // A Lightning-style .ckpt: {'state_dict': {...}, 'global_step': N, 'epoch': N}.
    const io::SafeTensorsFile file = io::SafeTensorsFile::open(test::referencePath(kCheckpoint));
    py::ValuePtr stateDict = py::Value::orderedDict();
    for (const QString& name : file.names()) {
        stateDict->set(name, py::Value::tensor(file.tensor(name).to(at::kHalf)));
    }
    py::ValuePtr root = py::Value::dict();
    root->set(QStringLiteral("epoch"), py::Value::integer(3));
    root->set(QStringLiteral("global_step"), py::Value::integer(1234));
    root->set(QStringLiteral("state_dict"), stateDict);

    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("tiny_sd1.ckpt"));
    io::writeTorchFile(path, root);
    ModelConfig config = readLdmConfig(test::referencePath(QStringLiteral("full/tiny_sd1.yaml")));
    const auto source = io::openTensorSource(path);
    UNetModel fromCkpt = loadUNet(*source, config);

    // Same weights (through float16) give the same output up to float16 rounding.
    const io::SafeTensorsFile io = pipeline();
    torch::NoGradGuard noGrad;
    const at::Tensor x = io.tensor(QStringLiteral("x_t"));
    const at::Tensor t = io.tensor(QStringLiteral("timesteps"));
    const at::Tensor context = io.tensor(QStringLiteral("context"));
    STUDIO_COMPARE_TENSORS(fromCkpt->forward(x, t, context), m_model.unet->forward(x, t, context),
                           2e-2, 2e-2);
}

QTEST_GUILESS_MAIN(TestFullPipeline)
#include "TestFullPipeline.moc"
