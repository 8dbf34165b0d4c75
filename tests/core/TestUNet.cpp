// The UNet against the original ldm code: forward passes (square, non-square, with one and two
// hypernetworks, at strength 0.5), one and two hypernetwork training steps, and the
// memory-saving paths (sliced attention, gradient checkpointing) against the plain one.

#include "support/TestSupport.h"

#include "core/diffusion/UNet.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/SafeTensors.h"
#include "core/io/TensorSource.h"

#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>

using namespace studio;

namespace {

QJsonObject unetEntry(const QString& key)
{
    QFile file(test::referencePath(QStringLiteral("unet/index.json")));
    if (!file.open(QIODevice::ReadOnly)) {
        return {};
    }
    for (const QJsonValue& value : QJsonDocument::fromJson(file.readAll()).array()) {
        if (value.toObject().value(QStringLiteral("key")).toString() == key) {
            return value.toObject();
        }
    }
    return {};
}

UNetModel loadUnet(const QString& key)
{
    const QJsonObject entry = unetEntry(key);
    UNetModel unet(UNetConfig::fromLdmParams(
        entry.value(QStringLiteral("unet_config")).toObject().toVariantMap()));
    const auto source = io::openTensorSource(
        test::referencePath(QStringLiteral("unet/%1_weights.safetensors").arg(key)));
    const QStringList unused =
        io::loadModuleWeights(*unet, *source, QStringLiteral("model.diffusion_model."));
    if (!unused.isEmpty()) {
        qWarning() << "unused UNet keys" << unused;
    }
    unet->eval();
    for (at::Tensor& parameter : unet->parameters()) {
        parameter.requires_grad_(false);
    }
    return unet;
}

Hypernetwork loadReferenceHypernetwork(const QString& name)
{
    return loadHypernetwork(test::referencePath(QStringLiteral("unet/") + name));
}

// "48.0.linear.0.weight" for each parameter, in Hypernetwork::parameters() order.
QStringList parameterNames(const Hypernetwork& hypernetwork)
{
    QStringList names;
    for (const ModulePair& pair : hypernetwork.modules()) {
        for (int j = 0; j < 2; ++j) {
            const HypernetworkModule& module = j == 0 ? pair.k : pair.v;
            for (const auto& item : module->named_parameters()) {
                names << QStringLiteral("%1.%2.%3")
                             .arg(pair.size)
                             .arg(j)
                             .arg(QString::fromStdString(item.key()));
            }
        }
    }
    return names;
}

at::Tensor trainingLoss(UNetModel& unet, const io::SafeTensorsFile& step)
{
    const at::Tensor output =
        unet->forward(step.tensor(QStringLiteral("x_t")), step.tensor(QStringLiteral("timesteps")),
                      step.tensor(QStringLiteral("context")));
    return (output - step.tensor(QStringLiteral("target"))).pow(2).mean();
}

// The SD1 UNet with its hypernetwork in training mode and the reference forward inputs.
struct TrainingSetup
{
    TrainingSetup()
    {
        const io::SafeTensorsFile io = io::SafeTensorsFile::open(
            test::referencePath(QStringLiteral("unet/unet_sd1_forward.safetensors")));
        x = io.tensor(QStringLiteral("x"));
        t = io.tensor(QStringLiteral("timesteps"));
        context = io.tensor(QStringLiteral("context"));
        hypernetwork.train(true);
        model->runtime().hypernetworks = {&hypernetwork};
    }

    UNetModel model = loadUnet(QStringLiteral("unet_sd1"));
    Hypernetwork hypernetwork =
        loadReferenceHypernetwork(QStringLiteral("unet_sd1_hn_relu_121_ln.pt"));
    at::Tensor x;
    at::Tensor t;
    at::Tensor context;
};

// The hypernetwork's gradients of mean(UNet(x)^2) for the setup's inputs.
std::vector<at::Tensor> gradientsOf(TrainingSetup& setup)
{
    for (at::Tensor& parameter : setup.hypernetwork.parameters()) {
        parameter.mutable_grad() = at::Tensor();
    }
    setup.model->forward(setup.x, setup.t, setup.context).pow(2).mean().backward();
    std::vector<at::Tensor> grads;
    for (const at::Tensor& parameter : setup.hypernetwork.parameters()) {
        grads.push_back(parameter.grad().clone());
    }
    return grads;
}

} // namespace

class TestUNet : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testForwardMatchesReference_data();
    void testForwardMatchesReference();
    void testTrainingStepsMatchReference_data();
    void testTrainingStepsMatchReference();
    void testSlicedAttentionMatchesPlain();
    void testGradientCheckpointingMatchesPlain();
    void testWrongShapeIsNamed();
};

void TestUNet::initTestCase()
{
    at::set_num_threads(1);
    QVERIFY2(!unetEntry(QStringLiteral("unet_sd1")).isEmpty(),
             qPrintable(QStringLiteral("no unet/index.json in '%1'").arg(test::referenceDir())));
}

void TestUNet::testForwardMatchesReference_data()
{
    QTest::addColumn<QString>("unet");
    QTest::addColumn<QString>("input");  // suffix of x / timesteps / context
    QTest::addColumn<QString>("output"); // expected tensor
    QTest::addColumn<QStringList>("hypernetworks");
    QTest::addColumn<QList<double>>("strengths");
    const QString sd1Hn = QStringLiteral("unet_sd1_hn_relu_121_ln.pt");
    const QString sd1Hn2 = QStringLiteral("unet_sd1_hn2_tanh_1p5.pt");
    const QString sd2Hn = QStringLiteral("unet_sd2_hn_swish_0p5.pt");
    for (const char* unet : {"unet_sd1", "unet_sd2"}) {
        const QString hn = QLatin1String(unet) == QLatin1String("unet_sd1") ? sd1Hn : sd2Hn;
        QTest::addRow("%s plain", unet) << unet << ""
                                        << "out" << QStringList() << QList<double>();
        QTest::addRow("%s non-square", unet) << unet << "_nonsquare"
                                             << "out_nonsquare" << QStringList() << QList<double>();
        QTest::addRow("%s hypernetwork", unet)
            << unet << ""
            << "out_hn_m1" << QStringList{hn} << QList<double>{1.0};
        QTest::addRow("%s hypernetwork at 0.5", unet)
            << unet << ""
            << "out_hn_m0.5" << QStringList{hn} << QList<double>{0.5};
        QTest::addRow("%s hypernetwork non-square", unet)
            << unet << "_nonsquare"
            << "out_nonsquare_hn_m1" << QStringList{hn} << QList<double>{1.0};
    }
    QTest::addRow("unet_sd1 two hypernetworks")
        << "unet_sd1"
        << ""
        << "out_hn_chain" << QStringList{sd1Hn, sd1Hn2} << QList<double>{1.0, 0.5};
}

void TestUNet::testForwardMatchesReference()
{
    QFETCH(QString, unet);
    QFETCH(QString, input);
    QFETCH(QString, output);
    QFETCH(QStringList, hypernetworks);
    QFETCH(QList<double>, strengths);

    UNetModel model = loadUnet(unet);
    const io::SafeTensorsFile io = io::SafeTensorsFile::open(
        test::referencePath(QStringLiteral("unet/%1_forward.safetensors").arg(unet)));
    std::vector<Hypernetwork> chain;
    for (qsizetype i = 0; i < hypernetworks.size(); ++i) {
        chain.push_back(loadReferenceHypernetwork(hypernetworks[i]));
        chain.back().setStrength(strengths[i]);
    }
    for (const Hypernetwork& hypernetwork : chain) {
        model->runtime().hypernetworks.push_back(&hypernetwork);
    }

    torch::NoGradGuard noGrad;
    const at::Tensor actual = model->forward(io.tensor(QStringLiteral("x") + input),
                                             io.tensor(QStringLiteral("timesteps") + input),
                                             io.tensor(QStringLiteral("context") + input));
    STUDIO_COMPARE_TENSORS(actual, io.tensor(output), 1e-4, 1e-4);
}

void TestUNet::testTrainingStepsMatchReference_data()
{
    QTest::addColumn<QString>("unet");
    QTest::addColumn<QString>("hypernetworkFile");
    QTest::addRow("sd1 eps") << "unet_sd1"
                             << "unet_sd1_hn_relu_121_ln.pt";
    QTest::addRow("sd2 v") << "unet_sd2"
                           << "unet_sd2_hn_swish_0p5.pt";
}

void TestUNet::testTrainingStepsMatchReference()
{
    QFETCH(QString, unet);
    QFETCH(QString, hypernetworkFile);
    UNetModel model = loadUnet(unet);
    const io::SafeTensorsFile step = io::SafeTensorsFile::open(
        test::referencePath(QStringLiteral("unet/%1_train_step.safetensors").arg(unet)));
    Hypernetwork hypernetwork = loadReferenceHypernetwork(hypernetworkFile);
    hypernetwork.train(true);
    model->runtime().hypernetworks = {&hypernetwork};
    const QStringList names = parameterNames(hypernetwork);
    const QJsonArray nearZero =
        QJsonDocument::fromJson(
            step.metadata().at(QStringLiteral("near_zero_grad_params")).toUtf8())
            .array();

    // webui: AdamW over Hypernetwork.weights() with torch's defaults and lr 1e-3.
    torch::optim::AdamW optimizer(hypernetwork.parameters(),
                                  torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
    optimizer.zero_grad();
    const at::Tensor loss = trainingLoss(model, step);
    QVERIFY(std::abs(loss.item<double>() / step.tensor(QStringLiteral("loss")).item<double>() -
                     1.0) < 1e-5);

    loss.backward();
    double largest = 0.0;
    for (qsizetype i = 0; i < names.size(); ++i) {
        largest = std::max(
            largest, step.tensor(QStringLiteral("grad.") + names[i]).abs().max().item<double>());
    }
    const std::vector<at::Tensor> parameters = hypernetwork.parameters();
    for (qsizetype i = 0; i < names.size(); ++i) {
        const at::Tensor expected = step.tensor(QStringLiteral("grad.") + names[i]);
        const at::Tensor& grad = parameters[static_cast<size_t>(i)].grad();
        if (nearZero.contains(names[i])) {
            STUDIO_COMPARE_TENSORS(grad, expected, 1e-7, 0.0);
        } else {
            STUDIO_COMPARE_TENSORS(grad, expected, 1e-4 * largest, 1e-3);
        }
    }

    optimizer.step();
    int64_t sensitive = 0;
    int64_t total = 0;
    for (qsizetype i = 0; i < names.size(); ++i) {
        const at::Tensor grad = step.tensor(QStringLiteral("grad.") + names[i]);
        sensitive += test::compareAfterAdamStep(
            parameters[static_cast<size_t>(i)],
            step.tensor(QStringLiteral("param_after.") + names[i]), grad, 1e-4 * largest);
        total += grad.numel();
    }
    // The gradient-noise-level elements are a small minority; the rest are checked tightly.
    QVERIFY2(sensitive * 20 < total,
             qPrintable(QStringLiteral("%1 of %2").arg(sensitive).arg(total)));

    optimizer.zero_grad();
    const at::Tensor loss2 = trainingLoss(model, step);
    QVERIFY(
        std::abs(loss2.item<double>() / step.tensor(QStringLiteral("loss_step2")).item<double>() -
                 1.0) < 1e-5);
    loss2.backward();
    optimizer.step();
    for (qsizetype i = 0; i < names.size(); ++i) {
        test::compareAfterAdamStep(parameters[static_cast<size_t>(i)],
                                   step.tensor(QStringLiteral("param_after_step2.") + names[i]),
                                   step.tensor(QStringLiteral("grad.") + names[i]), 1e-4 * largest);
    }
}

void TestUNet::testSlicedAttentionMatchesPlain()
{
    TrainingSetup setup;
    UNetModel& model = setup.model;

    const std::vector<at::Tensor> plain = gradientsOf(setup);
    torch::NoGradGuard noGrad;
    const at::Tensor plainOut = model->forward(setup.x, setup.t, setup.context);

    model->runtime().attention = AttentionKind::Sliced;
    model->runtime().sliceSize = 7; // several uneven slices of the 256 and 64 queries
    const at::Tensor slicedOut = model->forward(setup.x, setup.t, setup.context);
    STUDIO_COMPARE_TENSORS(slicedOut, plainOut, 1e-5, 1e-5);
    {
        at::AutoGradMode enable(true);
        const std::vector<at::Tensor> sliced = gradientsOf(setup);
        for (size_t i = 0; i < plain.size(); ++i) {
            STUDIO_COMPARE_TENSORS(sliced[i], plain[i], 1e-6, 1e-4);
        }
    }

    model->runtime().attention = AttentionKind::Sdpa;
    STUDIO_COMPARE_TENSORS(model->forward(setup.x, setup.t, setup.context), plainOut, 1e-5, 1e-5);
}

void TestUNet::testGradientCheckpointingMatchesPlain()
{
    TrainingSetup setup;
    UNetModel& model = setup.model;

    const std::vector<at::Tensor> plain = gradientsOf(setup);
    model->runtime().gradientCheckpointing = true;
    const std::vector<at::Tensor> checkpointed = gradientsOf(setup);
    QCOMPARE(checkpointed.size(), plain.size());
    for (size_t i = 0; i < plain.size(); ++i) {
        QVERIFY2(checkpointed[i].defined() && checkpointed[i].abs().sum().item<double>() > 0,
                 "a hypernetwork parameter got no gradient through a checkpointed block");
        STUDIO_COMPARE_TENSORS(checkpointed[i], plain[i], 1e-7, 1e-5);
    }
}

void TestUNet::testWrongShapeIsNamed()
{
    UNetConfig config = UNetConfig::fromLdmParams(unetEntry(QStringLiteral("unet_sd1"))
                                                      .value(QStringLiteral("unet_config"))
                                                      .toObject()
                                                      .toVariantMap());
    config.contextDim = 64; // the checkpoint's attn2.to_k is [.., 48]
    UNetModel unet(config);
    const auto source = io::openTensorSource(
        test::referencePath(QStringLiteral("unet/unet_sd1_weights.safetensors")));
    STUDIO_VERIFY_ERROR(
        io::loadModuleWeights(*unet, *source, QStringLiteral("model.diffusion_model.")),
        "attn2.to_k.weight' has shape [32, 48], the model needs [32, 64]");
}

QTEST_GUILESS_MAIN(TestUNet)
#include "TestUNet.moc"
