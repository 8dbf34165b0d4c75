// The torch-free generation facade on the consistent tiny SD1 model (reference README section
// 9): images are seeded, stacks apply in order at their strengths, results match the engine's
// generateImages bit for bit with the webui's infotext, changed hypernetwork files are read
// again, bad requests are named, a running generation can be cancelled, and checkpoints are
// described without loading them.

#include "support/TestSupport.h"

#include "core/diffusion/ImageGenerator.h"
#include "core/diffusion/Sampler.h"
#include "core/diffusion/StableDiffusion.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/PngFile.h"

#include <QDateTime>
#include <QFile>
#include <QObject>
#include <QTemporaryDir>

#include <thread>

using namespace studio;

namespace {

QString model()
{
    return test::referencePath(QStringLiteral("full/tiny_sd1.safetensors"));
}

QString tokenizer()
{
    return test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz"));
}

QString referenceHypernetwork()
{
    return test::referencePath(QStringLiteral("full/tiny_sd1_hn.pt"));
}

ImageRequest baseRequest(int64_t seed, std::vector<StackEntry> stack = {})
{
    ImageRequest request;
    request.prompt = QStringLiteral("a photo of a cat sitting on a red sofa");
    request.negativePrompt = QStringLiteral("blurry");
    request.seed = seed;
    request.steps = 3;
    request.hypernetworks = std::move(stack);
    return request;
}

// A hypernetwork for the tiny model's widths (32: text, 64: self-attention) whose weights are
// large enough to change an image visibly.
QString writeHypernetwork(const QString& path, uint64_t seed)
{
    HypernetworkConfig config;
    config.name = QFileInfo(path).completeBaseName();
    config.sizes = {32, 64};
    config.activation = QStringLiteral("relu");
    config.weightInit = WeightInit::KaimingNormal;
    config.initSeed = seed;
    saveHypernetwork(Hypernetwork::create(config), path);
    return path;
}

} // namespace

class TestImageGenerator : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testModelDescription();
    void testSeeded();
    void testStack();
    void testMatchesEngine();
    void testChangedFileIsReadAgain();
    void testBadRequests_data();
    void testBadRequests();
    void testCancel();
    void testDescribeCheckpoint();
    void testBadModel();
    void testSaveImage();

private:
    QTemporaryDir m_dir;
    std::unique_ptr<ImageGenerator> m_generator;
    QString m_a;
    QString m_b;
};

void TestImageGenerator::initTestCase()
{
    QVERIFY(m_dir.isValid());
    GeneratorModelOptions options;
    options.checkpoint = model();
    options.tokenizer = tokenizer();
    m_generator = std::make_unique<ImageGenerator>(options);
    m_a = writeHypernetwork(m_dir.filePath(QStringLiteral("a.pt")), 1);
    m_b = writeHypernetwork(m_dir.filePath(QStringLiteral("b.pt")), 2);
}

void TestImageGenerator::testModelDescription()
{
    // image_size 16 in the YAML, VAE factor 2.
    QCOMPARE(m_generator->modelDescription(),
             QStringLiteral("SD1 (eps), 32x32 native, from tiny_sd1.safetensors"));
}

void TestImageGenerator::testSeeded()
{
    const GeneratedImage first = m_generator->generate(baseRequest(1));
    QCOMPARE(first.width, 32);
    QCOMPARE(first.height, 32);
    QCOMPARE(first.rgb.size(), qsizetype(32 * 32 * 3));
    QCOMPARE(first.seed, int64_t(1));
    QCOMPARE(m_generator->generate(baseRequest(1)).rgb, first.rgb);
    QVERIFY(m_generator->generate(baseRequest(2)).rgb != first.rgb);

    ImageRequest sized = baseRequest(1);
    sized.width = 48;
    sized.height = 16;
    const GeneratedImage wide = m_generator->generate(sized);
    QCOMPARE(wide.width, 48);
    QCOMPARE(wide.height, 16);

    // -1 picks a seed and reports it; asking for that seed gives the same image.
    const GeneratedImage random = m_generator->generate(baseRequest(-1));
    QVERIFY(random.seed >= 0);
    QVERIFY2(random.parameters.contains(QStringLiteral("Seed: %1,").arg(random.seed)),
             qPrintable(random.parameters));
    QCOMPARE(m_generator->generate(baseRequest(random.seed)).rgb, random.rgb);
}

void TestImageGenerator::testStack()
{
    const QByteArray none = m_generator->generate(baseRequest(3)).rgb;
    const QByteArray alone = m_generator->generate(baseRequest(3, {{m_a, 1.0}})).rgb;
    // Strength 0 leaves the context unchanged (x + 0 * f(x)): the stack is the first alone.
    const QByteArray stacked = m_generator->generate(baseRequest(3, {{m_a, 1.0}, {m_b, 0.0}})).rgb;
    QVERIFY(alone != none);
    QCOMPARE(stacked, alone);
    // One file twice at different strengths: each entry keeps its own.
    const QByteArray twice = m_generator->generate(baseRequest(3, {{m_a, 0.0}, {m_a, 1.0}})).rgb;
    QCOMPARE(twice, alone);
    const QByteArray both = m_generator->generate(baseRequest(3, {{m_a, 1.0}, {m_b, 1.0}})).rgb;
    QVERIFY(both != alone);
    // The stack does not outlive its generation.
    QCOMPARE(m_generator->generate(baseRequest(3)).rgb, none);
}

void TestImageGenerator::testMatchesEngine()
{
    ImageRequest request = baseRequest(12, {{referenceHypernetwork(), 0.75}});
    request.cfgScale = 6.5;
    request.width = 64;
    request.height = 64;
    const GeneratedImage image = m_generator->generate(request);
    QCOMPARE(image.parameters,
             QStringLiteral("a photo of a cat sitting on a red sofa\nNegative prompt: blurry\n"
                            "Steps: 3, Sampler: Euler a, CFG scale: 6.5, Seed: 12, Size: 64x64, "
                            "Model hash: 58e82c0cd7, Model: tiny_sd1, Hypernet: tiny_sd1_hn, "
                            "Hypernet strength: 0.75"));

    // The same through the engine directly, as `hnstudio generate` runs it.
    StableDiffusionOptions options;
    options.checkpointPath = model();
    options.tokenizerPath = tokenizer();
    const std::unique_ptr<StableDiffusion> engine = StableDiffusion::load(options);
    Hypernetwork hypernetwork = loadHypernetwork(referenceHypernetwork());
    hypernetwork.setStrength(0.75);
    hypernetwork.train(false);
    const std::vector<const Hypernetwork*> applied = {&hypernetwork};
    engine->unet()->runtime().hypernetworks = applied;
    GenerationRequest direct;
    direct.prompt = request.prompt;
    direct.negativePrompt = request.negativePrompt;
    direct.seed = 12;
    direct.sampler.steps = 3;
    direct.sampler.cfgScale = 6.5;
    direct.width = 64;
    direct.height = 64;
    const GeneratedImages expected = generateImages(*engine, direct, applied);
    const at::Tensor pixels = expected.pixels[0].contiguous();
    QCOMPARE(image.rgb, QByteArray(reinterpret_cast<const char*>(pixels.data_ptr<uint8_t>()),
                                   qsizetype(pixels.numel())));
    QCOMPARE(image.parameters, expected.infotexts.front());

    // DDIM by either of its names.
    request.sampler = QStringLiteral("DDIM");
    const GeneratedImage ddim = m_generator->generate(request);
    QVERIFY(ddim.parameters.contains(QStringLiteral("Sampler: DDIM")));
    QVERIFY(ddim.rgb != image.rgb);
}

void TestImageGenerator::testChangedFileIsReadAgain()
{
    const QString moving = m_dir.filePath(QStringLiteral("moving.pt"));
    QVERIFY(QFile::copy(m_a, moving));
    const QByteArray withA = m_generator->generate(baseRequest(4, {{moving, 1.0}})).rgb;
    QCOMPARE(withA, m_generator->generate(baseRequest(4, {{m_a, 1.0}})).rgb);

    // Same size, new content, and a clearly later time stamp.
    QVERIFY(QFile::remove(moving));
    QVERIFY(QFile::copy(m_b, moving));
    QFile file(moving);
    QVERIFY(file.open(QIODevice::ReadWrite));
    QVERIFY(file.setFileTime(QDateTime::currentDateTime().addSecs(60),
                             QFileDevice::FileModificationTime));
    file.close();
    QCOMPARE(m_generator->generate(baseRequest(4, {{moving, 1.0}})).rgb,
             m_generator->generate(baseRequest(4, {{m_b, 1.0}})).rgb);
}

void TestImageGenerator::testBadRequests_data()
{
    QTest::addColumn<QString>("sampler");
    QTest::addColumn<int>("width");
    QTest::addColumn<int>("steps");
    QTest::addColumn<qint64>("seed");
    QTest::addColumn<QString>("hypernetwork");
    QTest::addColumn<QString>("message");

    QTest::addRow("unknown sampler") << QStringLiteral("plms") << 0 << 3 << qint64(1) << QString()
                                     << QStringLiteral("sampler 'plms' is not one of");
    QTest::addRow("odd width") << QStringLiteral("euler_a") << 31 << 3 << qint64(1) << QString()
                               << QStringLiteral("width: 31 is not a positive multiple of 2");
    QTest::addRow("zero steps") << QStringLiteral("euler_a") << 0 << 0 << qint64(1) << QString()
                                << QStringLiteral("steps: 0");
    QTest::addRow("too many DDIM steps") << QStringLiteral("ddim") << 0 << 600 << qint64(1)
                                         << QString() << QStringLiteral("DDIM steps: 600");
    QTest::addRow("negative seed") << QStringLiteral("euler_a") << 0 << 3 << qint64(-5) << QString()
                                   << QStringLiteral("seed: -5 is negative");
    QTest::addRow("missing hypernetwork")
        << QStringLiteral("euler_a") << 0 << 3 << qint64(1) << QStringLiteral("/nonexistent/x.pt")
        << QStringLiteral("hypernetwork '/nonexistent/x.pt' is not a file");
}

void TestImageGenerator::testBadRequests()
{
    QFETCH(QString, sampler);
    QFETCH(int, width);
    QFETCH(int, steps);
    QFETCH(qint64, seed);
    QFETCH(QString, hypernetwork);
    QFETCH(QString, message);

    ImageRequest request = baseRequest(seed);
    request.sampler = sampler;
    request.width = width;
    request.steps = steps;
    if (!hypernetwork.isEmpty()) {
        request.hypernetworks = {{hypernetwork, 1.0}};
    }
    STUDIO_VERIFY_ERROR(m_generator->generate(request), message);
    // The generator is still usable afterwards, with no stack left over.
    QCOMPARE(m_generator->generate(baseRequest(3)).rgb, m_generator->generate(baseRequest(3)).rgb);
}

void TestImageGenerator::testCancel()
{
    ImageRequest request = baseRequest(5);
    request.steps = 20000; // far longer than the test waits
    std::atomic<bool> done{false};
    QString message;
    std::thread worker([&] {
        message = test::errorMessageOf([&] { m_generator->generate(request); });
        done = true;
    });
    // generate() clears an earlier cancel when it starts, so keep asking until it stops.
    for (int i = 0; i < 3000 && !done; ++i) {
        m_generator->cancel();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    worker.join();
    QCOMPARE(message, QStringLiteral("generation cancelled"));
    // Cancelling does not stick to the next generation.
    QCOMPARE(m_generator->generate(baseRequest(3)).width, 32);
}

void TestImageGenerator::testDescribeCheckpoint()
{
    QCOMPARE(describeCheckpoint(model()),
             QStringLiteral("SD1.x, eps prediction, 4-channel UNet with context 32; "
                            "configuration from tiny_sd1.yaml"));

    // Without a YAML beside it, the configuration is detected from the weights, with the
    // values that had to be assumed counted.
    const QString alone = m_dir.filePath(QStringLiteral("alone.safetensors"));
    QVERIFY(QFile::copy(model(), alone));
    const QString detected = describeCheckpoint(alone);
    QVERIFY2(detected.startsWith(QStringLiteral("SD1.x, eps prediction, 4-channel UNet with "
                                                "context 32; configuration detected from the "
                                                "weights")),
             qPrintable(detected));

    // An explicit YAML wins.
    QCOMPARE(describeCheckpoint(alone, test::referencePath(QStringLiteral("full/tiny_sd1.yaml"))),
             QStringLiteral("SD1.x, eps prediction, 4-channel UNet with context 32; "
                            "configuration from tiny_sd1.yaml"));
}

void TestImageGenerator::testBadModel()
{
    STUDIO_VERIFY_ERROR(describeCheckpoint(QStringLiteral("/nonexistent/m.safetensors")),
                        QStringLiteral("model '/nonexistent/m.safetensors' is not a file"));
    // A hypernetwork is not a checkpoint: the message names the file.
    STUDIO_VERIFY_ERROR(describeCheckpoint(m_a), m_a);

    GeneratorModelOptions options;
    options.checkpoint = QStringLiteral("/nonexistent/m.safetensors");
    STUDIO_VERIFY_ERROR(ImageGenerator{options}, QStringLiteral("is not a file"));
    options.checkpoint = model();
    options.tokenizer = tokenizer();
    options.device = QStringLiteral("tpu");
    STUDIO_VERIFY_ERROR(ImageGenerator{options}, QStringLiteral("device 'tpu'"));
    options.device = QStringLiteral("cpu");
    options.precision = QStringLiteral("fp8");
    STUDIO_VERIFY_ERROR(ImageGenerator{options}, QStringLiteral("precision 'fp8'"));
}

void TestImageGenerator::testSaveImage()
{
    const GeneratedImage image = m_generator->generate(baseRequest(7, {{m_a, 0.5}}));
    const QString file = m_dir.filePath(QStringLiteral("image.png"));
    saveGeneratedImage(image, file);
    const at::Tensor pixels = io::readImageRgb(file).contiguous();
    QCOMPARE(test::shapeOf(pixels), QStringLiteral("[32, 32, 3]"));
    QCOMPARE(QByteArray(reinterpret_cast<const char*>(pixels.data_ptr<uint8_t>()),
                        qsizetype(pixels.numel())),
             image.rgb);
    const io::PngText text = io::readPngText(file);
    QCOMPARE(text.size(), size_t(1));
    QCOMPARE(text.front().first, QStringLiteral("parameters"));
    QCOMPARE(text.front().second, image.parameters);

    GeneratedImage broken = image;
    broken.rgb.chop(3);
    STUDIO_VERIFY_ERROR(saveGeneratedImage(broken, m_dir.filePath(QStringLiteral("bad.png"))),
                        QStringLiteral("it needs width x height x 3"));
    QVERIFY(!QFile::exists(m_dir.filePath(QStringLiteral("bad.png"))));
}

QTEST_GUILESS_MAIN(TestImageGenerator)
#include "TestImageGenerator.moc"
