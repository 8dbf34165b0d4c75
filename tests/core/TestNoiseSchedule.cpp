// The DDPM schedule reproduces ldm's register_schedule buffers (train-step files and the full
// checkpoint), q_sample and the eps / v training targets of the reference training steps, and
// the conversions from a model output back to x0 and the noise.

#include "support/TestSupport.h"

#include "core/diffusion/NoiseSchedule.h"
#include "core/io/SafeTensors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <QFile>
#include <QObject>

#include <cmath>

using namespace studio;

Q_DECLARE_METATYPE(studio::Parameterization)

namespace {

// The buffers are float64 values rounded once to float32; allow one float32 rounding step.
constexpr double kBufferRtol = 1e-7;

QString trainStepPath(const QString& unet)
{
    return test::referencePath(QStringLiteral("unet/%1_train_step.safetensors").arg(unet));
}

} // namespace

class TestNoiseSchedule : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testBuffersMatchTrainStep_data();
    void testBuffersMatchTrainStep();
    void testAllBuffersMatchCheckpoint();
    void testSpecValues();
    void testNoisingAndTargetMatchTrainStep_data();
    void testNoisingAndTargetMatchTrainStep();
    void testNoisingMatchesPipeline();
    void testConversionsInvertNoising_data();
    void testConversionsInvertNoising();
    void testHalfInputsPromoteToFloat();
    void testSampleTimesteps();
    void testRejectsBadTimesteps();
    void testRejectsBadSchedule();

private:
    NoiseSchedule m_schedule = NoiseSchedule::linear();
};

void TestNoiseSchedule::initTestCase()
{
    at::set_num_threads(1);
    QVERIFY(QFile::exists(trainStepPath(QStringLiteral("unet_sd1"))));
}

void TestNoiseSchedule::testBuffersMatchTrainStep_data()
{
    QTest::addColumn<QString>("unet");
    QTest::newRow("sd1") << QStringLiteral("unet_sd1");
    QTest::newRow("sd2") << QStringLiteral("unet_sd2");
}

void TestNoiseSchedule::testBuffersMatchTrainStep()
{
    QFETCH(QString, unet);
    const auto file = io::SafeTensorsFile::open(trainStepPath(unet));

    STUDIO_COMPARE_TENSORS(m_schedule.betas(), file.tensor(QStringLiteral("betas")), 0.0,
                           kBufferRtol);
    STUDIO_COMPARE_TENSORS(m_schedule.alphasCumprod(),
                           file.tensor(QStringLiteral("alphas_cumprod")), 0.0, kBufferRtol);
    STUDIO_COMPARE_TENSORS(m_schedule.sqrtAlphasCumprod(),
                           file.tensor(QStringLiteral("sqrt_alphas_cumprod")), 0.0, kBufferRtol);
    STUDIO_COMPARE_TENSORS(m_schedule.sqrtOneMinusAlphasCumprod(),
                           file.tensor(QStringLiteral("sqrt_one_minus_alphas_cumprod")), 0.0,
                           kBufferRtol);
}

void TestNoiseSchedule::testAllBuffersMatchCheckpoint()
{
    // Real checkpoints carry all 12 buffers under their bare names; so does the tiny one.
    const auto file =
        io::SafeTensorsFile::open(test::referencePath(QStringLiteral("full/tiny_sd1.safetensors")));
    const auto buffers = m_schedule.namedBuffers();
    QCOMPARE(static_cast<int>(buffers.size()), 12);

    for (const auto& [name, buffer] : buffers) {
        QVERIFY2(file.contains(name), qPrintable(name));
        QCOMPARE(buffer.scalar_type(), at::kFloat);
        STUDIO_COMPARE_TENSORS(buffer, file.tensor(name), 0.0, kBufferRtol);
    }
    // The order ldm registers them in, which is the checkpoint's order too.
    for (size_t index = 0; index < buffers.size(); ++index) {
        QCOMPARE(buffers[index].first, file.names().at(static_cast<int>(index)));
    }
}

void TestNoiseSchedule::testSpecValues()
{
    QCOMPARE(m_schedule.timesteps(), 1000);
    QCOMPARE(m_schedule.betas().size(0), 1000);
    QVERIFY(std::abs(m_schedule.alphasCumprod()[0].item<double>() - 0.99915) < 1e-7);
    QVERIFY(std::abs(m_schedule.alphasCumprod()[999].item<double>() - 0.0046601) < 1e-7);
    QCOMPARE(m_schedule.alphasCumprodPrev()[0].item<float>(), 1.0f);
    // posterior_variance[0] is 0, so its log is clipped at log(1e-20).
    QCOMPARE(m_schedule.posteriorVariance()[0].item<float>(), 0.0f);
    QCOMPARE(m_schedule.posteriorLogVarianceClipped()[0].item<float>(),
             static_cast<float>(std::log(1e-20)));
}

void TestNoiseSchedule::testNoisingAndTargetMatchTrainStep_data()
{
    QTest::addColumn<QString>("unet");
    QTest::addColumn<Parameterization>("parameterization");
    QTest::newRow("sd1 eps") << QStringLiteral("unet_sd1") << Parameterization::Eps;
    QTest::newRow("sd2 v") << QStringLiteral("unet_sd2") << Parameterization::V;
}

void TestNoiseSchedule::testNoisingAndTargetMatchTrainStep()
{
    QFETCH(QString, unet);
    QFETCH(Parameterization, parameterization);
    const auto file = io::SafeTensorsFile::open(trainStepPath(unet));
    const at::Tensor x0 = file.tensor(QStringLiteral("x0"));
    const at::Tensor noise = file.tensor(QStringLiteral("noise"));
    // Stored as float holding integers, as the reference data stores every index.
    const at::Tensor t = file.tensor(QStringLiteral("timesteps"));

    const at::Tensor xT = m_schedule.qSample(x0, t, noise);
    STUDIO_COMPARE_TENSORS(xT, file.tensor(QStringLiteral("x_t")), 1e-6, 0.0);

    const at::Tensor target = m_schedule.trainingTarget(parameterization, x0, noise, t);
    STUDIO_COMPARE_TENSORS(target, file.tensor(QStringLiteral("target")), 1e-6, 0.0);
}

void TestNoiseSchedule::testNoisingMatchesPipeline()
{
    const auto file = io::SafeTensorsFile::open(
        test::referencePath(QStringLiteral("full/pipeline_io.safetensors")));
    const at::Tensor t = file.tensor(QStringLiteral("timesteps"));
    QCOMPARE(t[0].item<float>(), 640.0f);

    const at::Tensor xT = m_schedule.qSample(file.tensor(QStringLiteral("latent")), t,
                                             file.tensor(QStringLiteral("noise")));
    STUDIO_COMPARE_TENSORS(xT, file.tensor(QStringLiteral("x_t")), 1e-6, 0.0);
}

void TestNoiseSchedule::testConversionsInvertNoising_data()
{
    QTest::addColumn<Parameterization>("parameterization");
    QTest::newRow("eps") << Parameterization::Eps;
    QTest::newRow("v") << Parameterization::V;
}

void TestNoiseSchedule::testConversionsInvertNoising()
{
    QFETCH(Parameterization, parameterization);
    const auto file = io::SafeTensorsFile::open(trainStepPath(QStringLiteral("unet_sd2")));
    const at::Tensor x0 = file.tensor(QStringLiteral("x0"));
    const at::Tensor noise = file.tensor(QStringLiteral("noise"));
    // Both ends of the schedule: 1/sqrt(acp) reaches ~15 at t = 999, amplifying rounding.
    const at::Tensor t = at::tensor({0, 999}, at::kLong);

    const at::Tensor xT = m_schedule.qSample(x0, t, noise);
    const at::Tensor perfect = m_schedule.trainingTarget(parameterization, x0, noise, t);

    STUDIO_COMPARE_TENSORS(m_schedule.predictStart(parameterization, xT, t, perfect), x0, 1e-4,
                           1e-5);
    STUDIO_COMPARE_TENSORS(m_schedule.predictNoise(parameterization, xT, t, perfect), noise, 1e-5,
                           1e-5);
}

void TestNoiseSchedule::testHalfInputsPromoteToFloat()
{
    // Half-precision inputs keep ldm's promotion: the float32 coefficients win.
    const at::Tensor x0 = at::ones({2, 4, 3, 3}, at::kHalf);
    const at::Tensor xT = m_schedule.qSample(x0, at::tensor({5, 7}), at::zeros_like(x0));
    QCOMPARE(xT.scalar_type(), at::kFloat);
    QCOMPARE(xT.sizes().vec(), x0.sizes().vec());
    QCOMPARE(xT[1][3][2][2].item<float>(), m_schedule.sqrtAlphasCumprod()[7].item<float>());
}

void TestNoiseSchedule::testSampleTimesteps()
{
    at::Generator first = at::detail::createCPUGenerator(/*seed_val=*/42);
    at::Generator second = at::detail::createCPUGenerator(/*seed_val=*/42);
    const at::Tensor t = m_schedule.sampleTimesteps(/*batch=*/4096, first);

    QCOMPARE(t.scalar_type(), at::kLong);
    QCOMPARE(t.size(0), 4096);
    QVERIFY(t.min().item<int64_t>() >= 0);
    QVERIFY(t.max().item<int64_t>() <= 999);
    QVERIFY(at::equal(t, m_schedule.sampleTimesteps(/*batch=*/4096, second)));
}

void TestNoiseSchedule::testRejectsBadTimesteps()
{
    const at::Tensor x0 = at::zeros({2, 4, 2, 2});
    STUDIO_VERIFY_ERROR(m_schedule.qSample(x0, at::tensor({0, 1000}), x0), "[0, 1000)");
    STUDIO_VERIFY_ERROR(m_schedule.qSample(x0, at::tensor({-1, 3}), x0), "[0, 1000)");
    STUDIO_VERIFY_ERROR(m_schedule.qSample(x0, at::tensor({0.5, 3.0}), x0), "integers");
    STUDIO_VERIFY_ERROR(m_schedule.qSample(x0, at::tensor({1, 2, 3}), x0), "do not match");
    STUDIO_VERIFY_ERROR(m_schedule.velocity(x0, x0, at::zeros({1, 2}, at::kLong)), "do not match");
}

void TestNoiseSchedule::testRejectsBadSchedule()
{
    STUDIO_VERIFY_ERROR(NoiseSchedule::linear(/*timesteps=*/1), "at least 2");
    STUDIO_VERIFY_ERROR(NoiseSchedule::linear(1000, /*linearStart=*/0.0, 0.012), "(0, 1)");
}

QTEST_GUILESS_MAIN(TestNoiseSchedule)
#include "TestNoiseSchedule.moc"
