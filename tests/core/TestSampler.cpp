// The samplers and text to image on the consistent tiny SD1 model of the reference data (README
// section 9): ldm's DDIM with classifier-free guidance reproduces the original run with and
// without the hypernetwork; Euler a follows k-diffusion's formulas and the webui's seeding.

#include "support/TestSupport.h"

#include "core/diffusion/Sampler.h"
#include "core/diffusion/StableDiffusion.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/SafeTensors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <QObject>

using namespace studio;

namespace {

at::Generator seededGenerator(uint64_t seed)
{
    return at::make_generator<at::CPUGeneratorImpl>(seed);
}

io::SafeTensorsFile pipeline()
{
    return io::SafeTensorsFile::open(
        test::referencePath(QStringLiteral("full/pipeline_io.safetensors")));
}

SamplerSettings referenceDdim()
{
    // README section 9, stage 5: S = 8, eta 0, guidance 5.
    SamplerSettings settings;
    settings.kind = SamplerKind::Ddim;
    settings.steps = 8;
    settings.cfgScale = 5.0;
    settings.eta = 0.0;
    return settings;
}

GenerationRequest smallRequest(int64_t seed)
{
    GenerationRequest request;
    request.prompt = QStringLiteral("a watercolor painting of a lighthouse");
    request.negativePrompt = QStringLiteral("blurry");
    request.seed = seed;
    request.sampler.steps = 3;
    request.width = 64;
    request.height = 64;
    return request;
}

} // namespace

class TestSampler : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanup();
    void testDdimTimesteps();
    void testSamplerNames();
    void testDdimMatchesReference_data();
    void testDdimMatchesReference();
    void testEulerAncestralFirstStep();
    void testEulerAncestralIsSeeded();
    void testConditioningOfDifferentLengths();
    void testCancelFromProgress();
    void testInfotext();
    void testBadImageSize();
    void testGenerateSeedsEachImage();

private:
    // start noise [B, 4, 16, 24] and conditioning of the reference's DDIM run
    struct ReferenceInputs
    {
        at::Tensor noise;
        at::Tensor cond;
        at::Tensor uncond;
    };
    ReferenceInputs referenceInputs() const;

    std::unique_ptr<StableDiffusion> m_model;
};

void TestSampler::initTestCase()
{
    at::set_num_threads(1);
    StableDiffusionOptions options;
    options.checkpointPath = test::referencePath(QStringLiteral("full/tiny_sd1.safetensors"));
    options.tokenizerPath =
        test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz"));
    m_model = StableDiffusion::load(options);
}

void TestSampler::cleanup()
{
    // Tests that attach a hypernetwork own it; the shared UNet must not keep the pointer.
    m_model->unet()->runtime().hypernetworks.clear();
}

TestSampler::ReferenceInputs TestSampler::referenceInputs() const
{
    const io::SafeTensorsFile io = pipeline();
    return {io.tensor(QStringLiteral("x_T")), io.tensor(QStringLiteral("context")),
            io.tensor(QStringLiteral("uncond_context"))};
}

void TestSampler::testDdimTimesteps()
{
    QCOMPARE(ddimTimesteps(8), (std::vector<int64_t>{1, 126, 251, 376, 501, 626, 751, 876}));
    const std::vector<int64_t> fifty = ddimTimesteps(50);
    QCOMPARE(fifty.size(), size_t(50));
    QCOMPARE(fifty.front(), int64_t(1));
    QCOMPARE(fifty[1], int64_t(21));
    QCOMPARE(fifty.back(), int64_t(981));
    // 1000 // 30 = 33 does not divide 1000: ldm then runs one step more than asked.
    QCOMPARE(ddimTimesteps(30).size(), size_t(31));
    QCOMPARE(ddimTimesteps(500).back(), int64_t(999));
    QCOMPARE(ddimTimesteps(1), std::vector<int64_t>{1});
    // 1000 // 3 = 333 divides 999: ldm's last timestep would be 1000, past the schedule.
    QCOMPARE(ddimTimesteps(3), (std::vector<int64_t>{1, 334, 667}));
    for (int steps = 1; steps <= 500; ++steps) {
        const std::vector<int64_t> timesteps = ddimTimesteps(steps);
        QVERIFY2(timesteps.back() < 1000 && int(timesteps.size()) >= steps,
                 qPrintable(QString::number(steps)));
    }

    STUDIO_VERIFY_ERROR(ddimTimesteps(0), QStringLiteral("DDIM steps"));
    // A stride of 1 would shift the last timestep to 1000, past the schedule.
    STUDIO_VERIFY_ERROR(ddimTimesteps(501), QStringLiteral("1..500"));
}

void TestSampler::testSamplerNames()
{
    QCOMPARE(parseSamplerKind(QStringLiteral("euler_a")), SamplerKind::EulerAncestral);
    QCOMPARE(parseSamplerKind(QStringLiteral("Euler a")), SamplerKind::EulerAncestral);
    QCOMPARE(parseSamplerKind(QStringLiteral("ddim")), SamplerKind::Ddim);
    QCOMPARE(parseSamplerKind(QStringLiteral("DDIM")), SamplerKind::Ddim);
    QCOMPARE(samplerName(SamplerKind::EulerAncestral), QStringLiteral("euler_a"));
    QCOMPARE(samplerDisplayName(SamplerKind::Ddim), QStringLiteral("DDIM"));
    STUDIO_VERIFY_ERROR(parseSamplerKind(QStringLiteral("dpm++")), QStringLiteral("euler_a"));
}

void TestSampler::testDdimMatchesReference_data()
{
    QTest::addColumn<bool>("withHypernetwork");
    QTest::addColumn<QString>("suffix");
    QTest::addRow("plain") << false << QString();
    QTest::addRow("hypernetwork at strength 1") << true << QStringLiteral("_hn");
}

void TestSampler::testDdimMatchesReference()
{
    QFETCH(bool, withHypernetwork);
    QFETCH(QString, suffix);

    Hypernetwork hypernetwork =
        loadHypernetwork(test::referencePath(QStringLiteral("full/tiny_sd1_hn.pt")));
    hypernetwork.train(false);
    if (withHypernetwork) {
        m_model->unet()->runtime().hypernetworks = {&hypernetwork};
    }

    const ReferenceInputs inputs = referenceInputs();
    std::vector<std::pair<int, int>> reports;
    const SamplerProgress progress = [&reports](int done, int total) {
        reports.emplace_back(done, total);
        return true;
    };
    at::Generator generator = seededGenerator(0);
    const at::Tensor latent = sampleLatents(*m_model, referenceDdim(), inputs.noise, inputs.cond,
                                            inputs.uncond, generator, progress);
    QCOMPARE(reports.size(), size_t(8));
    QCOMPARE(reports.back(), std::make_pair(8, 8));
    QVERIFY(!latent.requires_grad());

    const io::SafeTensorsFile io = pipeline();
    STUDIO_COMPARE_TENSORS(latent, io.tensor(QStringLiteral("ddim_latent") + suffix), 1e-3, 1e-4);
    STUDIO_COMPARE_TENSORS(m_model->decodeLatents(latent),
                           io.tensor(QStringLiteral("ddim_image") + suffix), 3e-4, 1e-4);
}

void TestSampler::testEulerAncestralFirstStep()
{
    // With one step the sigmas are [sigma_max, 0]: the result is the guided denoiser output at
    // sigma_max, written out here from k-diffusion's CompVisDenoiser.
    const ReferenceInputs inputs = referenceInputs();
    SamplerSettings settings;
    settings.kind = SamplerKind::EulerAncestral;
    settings.steps = 1;
    settings.cfgScale = 5.0;
    at::Generator generator = seededGenerator(1);
    const at::Tensor latent =
        sampleLatents(*m_model, settings, inputs.noise, inputs.cond, inputs.uncond, generator);

    torch::NoGradGuard noGrad;
    const at::Tensor acp = m_model->schedule().alphasCumprod();
    const float sigmaMax = ((1 - acp[999]) / acp[999]).sqrt().item<float>();
    QVERIFY(std::abs(sigmaMax - 14.6146f) < 1e-3f);
    const at::Tensor x = inputs.noise * sigmaMax;
    const int64_t batch = x.size(0);
    const at::Tensor eps =
        m_model->denoise(at::cat({x, x}) * (1.0f / std::sqrt(sigmaMax * sigmaMax + 1.0f)),
                         at::full({2 * batch}, 999.0),
                         at::cat({inputs.cond, inputs.uncond.expand({batch, -1, -1})}));
    const at::Tensor denoised = x - sigmaMax * eps.narrow(0, 0, batch);
    const at::Tensor denoisedUncond = x - sigmaMax * eps.narrow(0, batch, batch);
    const at::Tensor expected = denoisedUncond + (denoised - denoisedUncond) * 5.0;
    // sigma goes through exp(log(.)) and back to t (999 up to rounding), and guidance 5 at
    // sigma 14.6 amplifies the UNet's rounding ~70 times: the README's sampler tolerance.
    STUDIO_COMPARE_TENSORS(latent, expected, 1e-3, 1e-4);
}

void TestSampler::testEulerAncestralIsSeeded()
{
    const ReferenceInputs inputs = referenceInputs();
    SamplerSettings settings;
    settings.kind = SamplerKind::EulerAncestral;
    settings.steps = 4;
    const at::Tensor noise = inputs.noise.narrow(2, 0, 8).narrow(3, 0, 8);

    const auto run = [&](uint64_t seed) {
        at::Generator generator = seededGenerator(seed);
        return sampleLatents(*m_model, settings, noise, inputs.cond, inputs.uncond, generator);
    };
    const at::Tensor first = run(7);
    QVERIFY(at::isfinite(first).all().item<bool>());
    QVERIFY(at::equal(first, run(7)));
    QVERIFY(!at::allclose(first, run(8)));

    // eta 0 draws no noise: the generator no longer matters.
    settings.eta = 0.0;
    QVERIFY(at::equal(run(7), run(8)));
}

void TestSampler::testConditioningOfDifferentLengths()
{
    // A two-chunk prompt (154 tokens) against a one-chunk negative prompt cannot share a
    // batch; both samplers run them as separate UNet calls.
    const ReferenceInputs inputs = referenceInputs();
    const at::Tensor longCond = at::cat({inputs.cond, inputs.cond}, /*dim=*/1);
    const at::Tensor noise = inputs.noise.narrow(2, 0, 8).narrow(3, 0, 8);
    for (const SamplerKind kind : {SamplerKind::Ddim, SamplerKind::EulerAncestral}) {
        SamplerSettings settings;
        settings.kind = kind;
        settings.steps = 2;
        at::Generator generator = seededGenerator(3);
        const at::Tensor latent =
            sampleLatents(*m_model, settings, noise, longCond, inputs.uncond, generator);
        QCOMPARE(test::shapeOf(latent), test::shapeOf(noise));
        QVERIFY(at::isfinite(latent).all().item<bool>());
    }

    at::Generator generator = seededGenerator(3);
    STUDIO_VERIFY_ERROR(
        sampleLatents(*m_model, SamplerSettings(), noise, inputs.cond[0], inputs.uncond, generator),
        QStringLiteral("cond"));
}

void TestSampler::testCancelFromProgress()
{
    const ReferenceInputs inputs = referenceInputs();
    for (const SamplerKind kind : {SamplerKind::Ddim, SamplerKind::EulerAncestral}) {
        SamplerSettings settings;
        settings.kind = kind;
        settings.steps = 5;
        int calls = 0;
        const SamplerProgress stopAtTwo = [&calls](int done, int total) {
            ++calls;
            return !(done == 2 && total == 5);
        };
        at::Generator generator = seededGenerator(0);
        STUDIO_VERIFY_ERROR(sampleLatents(*m_model, settings, inputs.noise, inputs.cond,
                                          inputs.uncond, generator, stopAtTwo),
                            QStringLiteral("cancelled"));
        QCOMPARE(calls, 2);
    }
}

void TestSampler::testInfotext()
{
    Hypernetwork hypernetwork =
        loadHypernetwork(test::referencePath(QStringLiteral("full/tiny_sd1_hn.pt")));
    hypernetwork.setStrength(0.5);

    GenerationRequest request;
    request.prompt = QStringLiteral("a cat");
    request.negativePrompt = QStringLiteral("blurry, low quality");
    request.seed = 42;
    QCOMPARE(infotext(request, 42, QStringLiteral("tiny_sd1"), QStringLiteral("58e82c0cd7"),
                      {&hypernetwork}),
             QStringLiteral("a cat\nNegative prompt: blurry, low quality\nSteps: 20, Sampler: "
                            "Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: "
                            "58e82c0cd7, Model: tiny_sd1, Hypernet: tiny_sd1_hn, Hypernet "
                            "strength: 0.5"));

    request.negativePrompt.clear();
    request.sampler.kind = SamplerKind::Ddim;
    request.sampler.cfgScale = 7.5;
    request.sampler.eta = 0.25;
    request.width = 640;
    request.height = 384;
    QCOMPARE(infotext(request, 3, QStringLiteral("model"), QStringLiteral("0123456789"), {}),
             QStringLiteral("a cat\nSteps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 3, Size: "
                            "640x384, Model hash: 0123456789, Model: model, Eta: 0.25"));

    // A stack of hypernetworks: lists in application order, quoted like webui values with
    // commas; batches give each image's position.
    Hypernetwork second = hypernetwork;
    second.config().name = QStringLiteral("style");
    second.setStrength(0.0);
    hypernetwork.setStrength(1.0);
    request.sampler = SamplerSettings();
    request.width = request.height = 512;
    request.batchSize = 2;
    request.seed = 10;
    QCOMPARE(
        infotext(request, 11, QStringLiteral("m"), QStringLiteral("h"), {&hypernetwork, &second}),
        QStringLiteral("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 11, Size: "
                       "512x512, Model hash: h, Model: m, Hypernet: \"tiny_sd1_hn, style\", "
                       "Hypernet strength: \"1, 0\", Batch size: 2, Batch pos: 1"));
}

void TestSampler::testBadImageSize()
{
    // The tiny model's VAE downsamples by 2.
    QCOMPARE(m_model->latentDownsampling(), 2);
    GenerationRequest request = smallRequest(1);
    request.width = 63;
    STUDIO_VERIFY_ERROR(generateImages(*m_model, request), QStringLiteral("width: 63"));
    request.width = 64;
    request.height = 0;
    STUDIO_VERIFY_ERROR(generateImages(*m_model, request), QStringLiteral("height: 0"));
    request.height = 64;
    request.batchSize = 0;
    STUDIO_VERIFY_ERROR(generateImages(*m_model, request), QStringLiteral("batch size"));
    request.batchSize = 1;
    request.sampler.steps = 0;
    STUDIO_VERIFY_ERROR(generateImages(*m_model, request), QStringLiteral("steps"));
}

void TestSampler::testGenerateSeedsEachImage()
{
    // webui txt2img: image i of a batch uses seed + i, so the second image of a batch seeded 5
    // is the image a batch of one seeded 6 makes (up to batch-size rounding).
    GenerationRequest request = smallRequest(5);
    request.batchSize = 2;
    const GeneratedImages batch = generateImages(*m_model, request);
    QCOMPARE(test::shapeOf(batch.pixels), QStringLiteral("[2, 64, 64, 3]"));
    QCOMPARE(batch.pixels.scalar_type(), at::kByte);
    QCOMPARE(batch.infotexts.size(), size_t(2));
    QVERIFY(batch.infotexts[0].contains(QStringLiteral("Seed: 5,")));
    QVERIFY(batch.infotexts[1].contains(QStringLiteral("Seed: 6,")));
    QVERIFY(batch.infotexts[1].contains(QStringLiteral("Batch pos: 1")));

    GenerationRequest single = smallRequest(6);
    const GeneratedImages alone = generateImages(*m_model, single);
    const at::Tensor difference =
        (alone.pixels[0].to(at::kInt) - batch.pixels[1].to(at::kInt)).abs();
    QVERIFY2(
        difference.max().item<int>() <= 2,
        qPrintable(QStringLiteral("max pixel difference %1").arg(difference.max().item<int>())));
    QVERIFY(!at::equal(batch.pixels[0], batch.pixels[1]));
    QVERIFY(at::equal(generateImages(*m_model, single).pixels, alone.pixels));
}

QTEST_GUILESS_MAIN(TestSampler)
#include "TestSampler.moc"
