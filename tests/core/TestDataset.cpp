// The training dataset (spec hypernetworks.md 3.2 and 4.4): captions, skipped files, errors that
// name the run-file field, no-crop sizes, grouped batches, reproducible prompts and flips, and
// the latent cache's three sampling methods on the tiny SD1 model of the reference data.

#include "support/TrainingFixture.h"

#include "core/data/Dataset.h"
#include "core/data/LatentCache.h"
#include "core/diffusion/StableDiffusion.h"

#include <ATen/CPUGeneratorImpl.h>

#include <QObject>
#include <QSet>
#include <QTemporaryDir>

#include <set>

using namespace studio;

namespace {

DatasetSection optionsFor(const QString& folder)
{
    DatasetSection options;
    options.folder = folder;
    options.width = 64;
    options.height = 64;
    return options;
}

void writeText(const QString& path, const QByteArray& text)
{
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(text);
}

// A template that is the caption alone, so a prompt shows its tags directly.
QString fileWordsTemplate(const QTemporaryDir& dir)
{
    const QString path = dir.filePath(QStringLiteral("filewords.txt"));
    writeText(path, "[filewords]\n");
    return path;
}

QStringList sortedTags(const QString& text)
{
    QStringList tags = text.split(QLatin1Char(','));
    tags.sort();
    return tags;
}

} // namespace

class TestDataset : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testCaptionsFromTextFiles();
    void testCaptionsFromFileNames();
    void testFileNameWordRegex();
    void testCorruptFileIsSkippedAndNamed();
    void testErrorsNameTheField_data();
    void testErrorsNameTheField();
    void testBuiltInTemplates();
    void testNoCropSize_data();
    void testNoCropSize();
    void testNoCropDatasetSizes();
    void testFixedSizeResize();
    void testEpochBatchesFixedSize();
    void testEpochBatchesGrouped_data();
    void testEpochBatchesGrouped();
    void testPromptFixedPerImage();
    void testShuffleAndDropout();
    void testFlip();
    void testStreamSeed();
    void testLatentsDeterministic();
    void testLatentsOnce();
    void testLatentsRandom();
    void testLatentFlipsAndCancel();

private:
    StableDiffusion& tinyModel();

    std::unique_ptr<StableDiffusion> m_model;
};

StableDiffusion& TestDataset::tinyModel()
{
    if (!m_model) {
        StableDiffusionOptions options;
        options.checkpointPath = test::referencePath(QStringLiteral("full/tiny_sd1.safetensors"));
        options.tokenizerPath =
            test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz"));
        options.loadTextEncoder = false;
        m_model = StableDiffusion::load(options);
    }
    return *m_model;
}

void TestDataset::testCaptionsFromTextFiles()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), test::squareImages(3), false);
    // Read whole and not stripped, as the webui; "\r\n" becomes "\n" as in Python's text mode.
    writeText(dir.filePath(QStringLiteral("img1.txt")), "two lines,\r\n tag \n");

    const Dataset dataset(optionsFor(dir.path()), QStringLiteral("hn"), 1);

    QCOMPARE(dataset.size(), 3);
    QCOMPARE(dataset.images()[0].caption, QStringLiteral("a red circle, green square"));
    QCOMPARE(dataset.images()[1].caption, QStringLiteral("two lines,\n tag \n"));
    QCOMPARE(QFileInfo(dataset.images()[2].path).fileName(), QStringLiteral("img2.png"));
    QVERIFY(dataset.skipped().empty());
}

void TestDataset::testCaptionsFromFileNames()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(),
                           {{QStringLiteral("001-red ball.png"), 64, 64, {}},
                            {QStringLiteral("12 blue cube.JPG"), 64, 64, {}},
                            {QStringLiteral("green-cone.bmp"), 64, 64, {}},
                            {QStringLiteral("a.b.jpeg"), 64, 64, {}}},
                           false);
    writeText(dir.filePath(QStringLiteral("notes.md")), "not an image");

    const Dataset dataset(optionsFor(dir.path()), QStringLiteral("hn"), 1);

    // Sorted by file name (code points); the leading number and its space are removed.
    QStringList captions;
    for (const DatasetImage& image : dataset.images()) {
        captions << image.caption;
    }
    QCOMPARE(captions, (QStringList{QStringLiteral("red ball"), QStringLiteral("blue cube"),
                                    QStringLiteral("a.b"), QStringLiteral("green-cone")}));
    QVERIFY(dataset.skipped().empty());
}

void TestDataset::testFileNameWordRegex()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), {{QStringLiteral("07-red_ball (2).png"), 64, 64, {}}},
                           false);
    DatasetSection options = optionsFor(dir.path());
    options.filenameWordRegex = QStringLiteral("[a-z]+");
    options.filenameJoinString = QStringLiteral(", ");

    const Dataset dataset(options, QStringLiteral("hn"), 1);

    QCOMPARE(dataset.images()[0].caption, QStringLiteral("red, ball"));
}

void TestDataset::testCorruptFileIsSkippedAndNamed()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), test::squareImages(2), true);

    const Dataset dataset(optionsFor(dir.path()), QStringLiteral("hn"), 1);

    QCOMPARE(dataset.size(), 2);
    QCOMPARE(int(dataset.skipped().size()), 1);
    QCOMPARE(QFileInfo(dataset.skipped()[0].path).fileName(), QStringLiteral("broken.png"));
    QVERIFY2(dataset.skipped()[0].reason.contains(QStringLiteral("broken.png")),
             qPrintable(dataset.skipped()[0].reason));
}

void TestDataset::testErrorsNameTheField_data()
{
    QTest::addColumn<QString>("layout");
    QTest::addColumn<QString>("templateFile");
    QTest::addColumn<QString>("expected");

    QTest::addRow("missing folder") << "missing"
                                    << "style_filewords"
                                    << "dataset.folder";
    QTest::addRow("folder without images") << "text only"
                                           << "style_filewords"
                                           << "dataset.folder";
    QTest::addRow("only corrupt images") << "corrupt only"
                                         << "style_filewords"
                                         << "broken.png";
    QTest::addRow("missing template file") << "images"
                                           << "nowhere/t.txt"
                                           << "dataset.template";
    QTest::addRow("unknown built-in template") << "images"
                                               << "stile"
                                               << "dataset.template";
    QTest::addRow("empty template") << "images"
                                    << "empty.txt"
                                    << "dataset.template";
}

void TestDataset::testErrorsNameTheField()
{
    QFETCH(QString, layout);
    QFETCH(QString, templateFile);
    QFETCH(QString, expected);

    QTemporaryDir dir;
    const QString folder = dir.filePath(QStringLiteral("images"));
    if (layout == QLatin1String("images")) {
        test::writeImageFolder(folder, test::squareImages(1), false);
    } else if (layout == QLatin1String("corrupt only")) {
        test::writeImageFolder(folder, {}, true);
    } else if (layout == QLatin1String("text only")) {
        QVERIFY(QDir().mkpath(folder));
        writeText(QDir(folder).filePath(QStringLiteral("a.txt")), "caption");
    }
    writeText(dir.filePath(QStringLiteral("empty.txt")), "\n  \n");
    DatasetSection options = optionsFor(folder);
    options.templateFile =
        templateFile.endsWith(QLatin1String(".txt")) ? dir.filePath(templateFile) : templateFile;

    STUDIO_VERIFY_ERROR(Dataset(options, QStringLiteral("hn"), 1), expected);
    // Every message says what to change.
    const QString message =
        test::errorMessageOf([&] { Dataset(options, QStringLiteral("hn"), 1); });
    QVERIFY2(message.startsWith(QLatin1String("dataset.")), qPrintable(message));
}

void TestDataset::testBuiltInTemplates()
{
    for (const QString& name : builtInTemplateNames()) {
        QVERIFY2(!readTemplateLines(name).isEmpty(), qPrintable(name));
    }
    const QStringList style = readTemplateLines(QStringLiteral("style_filewords"));
    QCOMPARE(style.size(), 19);
    QCOMPARE(style.front(), QStringLiteral("a painting of [filewords], art by [name]"));
    QCOMPARE(readTemplateLines(QStringLiteral("none")), QStringList{QStringLiteral("picture")});
    QCOMPARE(readTemplateLines(QStringLiteral("hypernetwork")).size(), 27);
}

void TestDataset::testNoCropSize_data()
{
    QTest::addColumn<int>("width");
    QTest::addColumn<int>("height");
    QTest::addColumn<int>("box");
    QTest::addColumn<int>("expectedWidth");
    QTest::addColumn<int>("expectedHeight");

    // Worked from extension 4.4: r = max(1, w/W, h/H); amp = min(W/w, H/h), applied when > 1;
    // sides int(w/r), int(h/r), each rounded up to 64.
    QTest::addRow("256x128 in 64: r 4 -> 64x32 -> 64x64") << 256 << 128 << 64 << 64 << 64;
    QTest::addRow("200x100 in 64: r 3.125 -> 64x32") << 200 << 100 << 64 << 64 << 64;
    QTest::addRow("128x256 in 64") << 128 << 256 << 64 << 64 << 64;
    QTest::addRow("64x128 in 64: r 2 -> 32x64") << 64 << 128 << 64 << 64 << 64;
    QTest::addRow("1024x512 in 512: halved") << 1024 << 512 << 512 << 512 << 256;
    QTest::addRow("700x300 in 512: 219 rounds up") << 700 << 300 << 512 << 512 << 256;
    QTest::addRow("100x50 in 512: enlarged by 5.12") << 100 << 50 << 512 << 512 << 256;
    QTest::addRow("600x520 in 512: 443 -> 448") << 600 << 520 << 512 << 512 << 448;
    QTest::addRow("1000x1000 in 504: exceeds the box") << 1000 << 1000 << 504 << 512 << 512;
    QTest::addRow("128x64 in 128: kept") << 128 << 64 << 128 << 128 << 64;
    QTest::addRow("64x64 in 128: enlarged") << 64 << 64 << 128 << 128 << 128;
    QTest::addRow("1x1000 in 512: at least 64") << 1 << 1000 << 512 << 64 << 512;
}

void TestDataset::testNoCropSize()
{
    QFETCH(int, width);
    QFETCH(int, height);
    QFETCH(int, box);
    QFETCH(int, expectedWidth);
    QFETCH(int, expectedHeight);

    const auto [w, h] = noCropSize(width, height, box, box);

    QCOMPARE(w, expectedWidth);
    QCOMPARE(h, expectedHeight);
}

void TestDataset::testNoCropDatasetSizes()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(),
                           {{QStringLiteral("a.png"), 128, 64, {}},
                            {QStringLiteral("b.png"), 48, 48, {}},
                            {QStringLiteral("c.png"), 64, 128, {}},
                            {QStringLiteral("d.png"), 200, 100, {}}},
                           false);
    DatasetSection options = optionsFor(dir.path());
    options.noCrop = true;
    options.width = 128;
    options.height = 128;

    const Dataset dataset(options, QStringLiteral("hn"), 1);

    const std::vector<std::pair<int, int>> expected = {{128, 64}, {128, 128}, {64, 128}, {128, 64}};
    for (int i = 0; i < dataset.size(); ++i) {
        const DatasetImage& image = dataset.images()[i];
        QCOMPARE(std::pair(image.width, image.height), expected[i]);
        QCOMPARE(test::shapeOf(dataset.loadPixels(i, false)),
                 test::shapeOf(at::zeros({3, expected[i].second, expected[i].first})));
    }
    QCOMPARE(std::pair(dataset.images()[3].sourceWidth, dataset.images()[3].sourceHeight),
             std::pair(200, 100));
}

void TestDataset::testFixedSizeResize()
{
    QTemporaryDir dir;
    test::writeImageFolder(
        dir.path(), {{QStringLiteral("a.png"), 64, 64, {}}, {QStringLiteral("b.png"), 100, 50, {}}},
        false);
    const Dataset dataset(optionsFor(dir.path()), QStringLiteral("hn"), 1);

    // Same size: the pixels exactly, RGB, x / 127.5 - 1.
    const cv::Mat bgr = cv::imread(dataset.images()[0].path.toStdString(), cv::IMREAD_COLOR);
    const at::Tensor raw = at::from_blob(bgr.data, {64, 64, 3}, at::kByte).clone();
    const at::Tensor expected = raw.flip({2}).permute({2, 0, 1}).to(at::kFloat) / 127.5f - 1.0f;
    STUDIO_COMPARE_TENSORS(dataset.loadPixels(0, false), expected, 1e-6, 0);

    // Stretched to 64x64 ignoring the aspect ratio; bicubic overshoot is clamped.
    const at::Tensor resized = dataset.loadPixels(1, false);
    QCOMPARE(test::shapeOf(resized), test::shapeOf(at::zeros({3, 64, 64})));
    QVERIFY(resized.min().item<float>() >= -1.0f && resized.max().item<float>() <= 1.0f);
    // Far from the drawn shapes the background stays exact: the weights sum to one. The
    // fixture paints image 1 on BGR (90, 120, 160).
    const at::Tensor background = at::tensor({160.0, 120.0, 90.0}).div(127.5).sub(1.0);
    STUDIO_COMPARE_TENSORS(resized.select(2, 60).select(1, 60), background.to(at::kFloat), 1e-6, 0);
}

void TestDataset::testEpochBatchesFixedSize()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), test::squareImages(10), false);
    const Dataset dataset(optionsFor(dir.path()), QStringLiteral("hn"), 5);

    // One size group: shuffle, cut into N / batch batches, drop the remainder.
    const auto batches = dataset.epochBatches(0, 3);
    QCOMPARE(int(batches.size()), 3);
    std::set<int> seen;
    for (const auto& batch : batches) {
        QCOMPARE(int(batch.size()), 3);
        seen.insert(batch.begin(), batch.end());
    }
    QCOMPARE(int(seen.size()), 9);

    // A batch larger than the dataset shrinks to it, as the webui's min(batch, N).
    QCOMPARE(int(dataset.epochBatches(0, 50).size()), 1);
    QCOMPARE(int(dataset.epochBatches(0, 50).front().size()), 10);
}

void TestDataset::testEpochBatchesGrouped_data()
{
    QTest::addColumn<int>("batchSize");
    QTest::newRow("batch 1") << 1;
    QTest::newRow("batch 2") << 2;
    QTest::newRow("batch 3") << 3;
    QTest::newRow("batch 4") << 4;
}

void TestDataset::testEpochBatchesGrouped()
{
    QFETCH(int, batchSize);

    // Three no-crop sizes at box 128: five 128x64, four 128x128, two 64x128.
    QTemporaryDir dir;
    std::vector<test::ImageSpec> specs;
    const std::vector<std::pair<int, int>> sizes = {{128, 64}, {64, 64}, {64, 128}};
    const int counts[] = {5, 4, 2};
    for (int s = 0; s < 3; ++s) {
        for (int i = 0; i < counts[s]; ++i) {
            specs.push_back(
                {QStringLiteral("s%1_%2.png").arg(s).arg(i), sizes[s].first, sizes[s].second, {}});
        }
    }
    test::writeImageFolder(dir.path(), specs, false);
    DatasetSection options = optionsFor(dir.path());
    options.noCrop = true;
    options.width = 128;
    options.height = 128;
    const Dataset dataset(options, QStringLiteral("hn"), 3);
    QCOMPARE(dataset.size(), 11);

    std::set<std::vector<std::vector<int>>> orders;
    for (int64_t epoch = 0; epoch < 6; ++epoch) {
        const auto batches = dataset.epochBatches(epoch, batchSize);
        QCOMPARE(int(batches.size()), 11 / batchSize);
        for (const auto& batch : batches) {
            QCOMPARE(int(batch.size()), batchSize);
            const DatasetImage& first = dataset.images()[batch.front()];
            for (int index : batch) {
                QCOMPARE(dataset.images()[index].width, first.width);
                QCOMPARE(dataset.images()[index].height, first.height);
            }
        }
        QVERIFY(batches == dataset.epochBatches(epoch, batchSize));
        orders.insert(batches);
    }
    QVERIFY2(orders.size() > 1, "every epoch gave the same batches");
}

void TestDataset::testPromptFixedPerImage()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), test::squareImages(6), false);
    const Dataset dataset(optionsFor(dir.path()), QStringLiteral("mystyle"), 9);

    QVERIFY(!dataset.promptsVary());
    QSet<QString> lines;
    for (int i = 0; i < dataset.size(); ++i) {
        const QString prompt = dataset.prompt(i, 0);
        QCOMPARE(dataset.prompt(i, 7), prompt);
        QVERIFY2(prompt.contains(dataset.images()[i].caption), qPrintable(prompt));
        QVERIFY2(prompt.endsWith(QLatin1String(", art by mystyle")), qPrintable(prompt));
        QVERIFY(!prompt.contains(QLatin1Char('[')));
        lines << QString(prompt)
                     .replace(dataset.images()[i].caption, QStringLiteral("[filewords]"))
                     .replace(QStringLiteral("mystyle"), QStringLiteral("[name]"));
    }
    for (const QString& line : lines) {
        QVERIFY2(dataset.templateLines().contains(line), qPrintable(line));
    }
    QVERIFY2(lines.size() > 1, "all images got the same template line");
}

void TestDataset::testShuffleAndDropout()
{
    QTemporaryDir dir;
    const QString caption = QStringLiteral("a,b,c,d,e,f,g,h");
    test::writeImageFolder(dir.path(), {{QStringLiteral("x.png"), 64, 64, caption}}, false);
    DatasetSection options = optionsFor(dir.path());
    options.templateFile = fileWordsTemplate(dir);

    options.shuffleTags = true;
    const Dataset shuffled(options, QStringLiteral("hn"), 4);
    const Dataset shuffledAgain(options, QStringLiteral("hn"), 4);
    QVERIFY(shuffled.promptsVary());
    QSet<QString> orders;
    for (int64_t epoch = 0; epoch < 10; ++epoch) {
        const QString prompt = shuffled.prompt(0, epoch);
        QCOMPARE(sortedTags(prompt), sortedTags(caption));
        QCOMPARE(shuffled.prompt(0, epoch), prompt);
        QCOMPARE(shuffledAgain.prompt(0, epoch), prompt);
        orders << prompt;
    }
    QVERIFY(orders.size() > 5);

    options.shuffleTags = false;
    options.tagDropout = 0.5;
    const Dataset dropped(options, QStringLiteral("hn"), 4);
    QSet<int> counts;
    for (int64_t epoch = 0; epoch < 20; ++epoch) {
        const QString prompt = dropped.prompt(0, epoch);
        const QStringList tags = prompt.isEmpty() ? QStringList() : prompt.split(QLatin1Char(','));
        counts << int(tags.size());
        // Kept tags stay in caption order without shuffle.
        int last = -1;
        for (const QString& tag : tags) {
            const int position = caption.indexOf(tag);
            QVERIFY(position > last);
            last = position;
        }
        QCOMPARE(Dataset(options, QStringLiteral("hn"), 4).prompt(0, epoch), prompt);
    }
    QVERIFY2(counts.size() > 2, "dropout did not change the number of tags");
}

void TestDataset::testFlip()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), test::squareImages(10), false);
    DatasetSection options = optionsFor(dir.path());

    options.flipProbability = 0.5;
    const Dataset dataset(options, QStringLiteral("hn"), 2);
    int flips = 0;
    for (int64_t epoch = 0; epoch < 20; ++epoch) {
        for (int i = 0; i < dataset.size(); ++i) {
            flips += dataset.flipped(i, epoch) ? 1 : 0;
            QCOMPARE(dataset.flipped(i, epoch), dataset.flipped(i, epoch));
        }
    }
    QVERIFY2(flips > 60 && flips < 140, qPrintable(QString::number(flips)));

    // The flip really mirrors the pixels (the webui's RandomHorizontalFlip never ran).
    const at::Tensor plain = dataset.loadPixels(3, false);
    const at::Tensor mirrored = dataset.loadPixels(3, true);
    QVERIFY(!plain.equal(mirrored));
    QVERIFY(mirrored.equal(plain.flip({2})));

    options.flipProbability = 0.0;
    const Dataset never(options, QStringLiteral("hn"), 2);
    options.flipProbability = 1.0;
    const Dataset always(options, QStringLiteral("hn"), 2);
    for (int i = 0; i < 10; ++i) {
        QVERIFY(!never.flipped(i, 1));
        QVERIFY(always.flipped(i, 1));
    }
}

void TestDataset::testStreamSeed()
{
    QCOMPARE(streamSeed(1, {2, 3}), streamSeed(1, {2, 3}));
    QVERIFY(streamSeed(1, {2, 3}) != streamSeed(1, {3, 2}));
    QVERIFY(streamSeed(1, {2}) != streamSeed(1, {2, 0}));
    QVERIFY(streamSeed(1, {2}) != streamSeed(2, {2}));
    QVERIFY(streamSeed(0, {}) != 0);
}

void TestDataset::testLatentsDeterministic()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), test::squareImages(2), false);
    StableDiffusion& model = tinyModel();
    const Dataset dataset(optionsFor(dir.path()), QStringLiteral("hn"), 1,
                          model.latentDownsampling());
    LatentCache cache(dataset, model, LatentSampling::Deterministic, 1);

    const at::Tensor latent = cache.latent(1, false, 5);

    const VaePosterior posterior = model.encodeImages(dataset.loadPixels(1, false).unsqueeze(0));
    const at::Tensor expected = posterior.mean[0] * model.config().scaleFactor;
    QCOMPARE(test::shapeOf(latent), test::shapeOf(at::zeros({4, 32, 32})));
    QCOMPARE(latent.scalar_type(), at::kFloat);
    QVERIFY(latent.device().is_cpu());
    STUDIO_COMPARE_TENSORS(latent, expected, 1e-6, 1e-6);
    QVERIFY(cache.latent(1, false, 6).equal(latent));
}

void TestDataset::testLatentsOnce()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), test::squareImages(2), false);
    StableDiffusion& model = tinyModel();
    const Dataset dataset(optionsFor(dir.path()), QStringLiteral("hn"), 1,
                          model.latentDownsampling());
    LatentCache cache(dataset, model, LatentSampling::Once, 1);
    LatentCache sameSeed(dataset, model, LatentSampling::Once, 1);
    LatentCache otherSeed(dataset, model, LatentSampling::Once, 2);
    LatentCache mean(dataset, model, LatentSampling::Deterministic, 1);
    cache.encodeAll();

    // One sample kept for the whole run: the use key does not matter.
    const at::Tensor latent = cache.latent(0, false, 1);
    QVERIFY(cache.latent(0, false, 2).equal(latent));
    QVERIFY(sameSeed.latent(0, false, 3).equal(latent));
    QVERIFY(!otherSeed.latent(0, false, 1).equal(latent));
    QVERIFY(!mean.latent(0, false, 1).equal(latent));
    QCOMPARE(cache.bytes(), int64_t(2 * 4 * 32 * 32 * 4));
}

void TestDataset::testLatentsRandom()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), test::squareImages(2), false);
    StableDiffusion& model = tinyModel();
    const Dataset dataset(optionsFor(dir.path()), QStringLiteral("hn"), 1,
                          model.latentDownsampling());
    LatentCache cache(dataset, model, LatentSampling::Random, 1);

    const at::Tensor first = cache.latent(0, false, 10);
    QVERIFY(cache.latent(0, false, 10).equal(first));
    QVERIFY(!cache.latent(0, false, 11).equal(first));

    // mean + std * N(0, I) from a CPU generator seeded with the use key, then scaled.
    const VaePosterior posterior = model.encodeImages(dataset.loadPixels(0, false).unsqueeze(0));
    const at::Tensor noise = at::randn({4, 32, 32}, at::make_generator<at::CPUGeneratorImpl>(10));
    const at::Tensor expected =
        (posterior.mean[0] + posterior.std()[0] * noise) * model.config().scaleFactor;
    STUDIO_COMPARE_TENSORS(first, expected, 1e-6, 1e-5);
    // Mean and std are kept: two tensors per image.
    QCOMPARE(cache.bytes(), int64_t(2 * 4 * 32 * 32 * 4));
}

void TestDataset::testLatentFlipsAndCancel()
{
    QTemporaryDir dir;
    test::writeImageFolder(dir.path(), test::squareImages(3), false);
    StableDiffusion& model = tinyModel();
    DatasetSection options = optionsFor(dir.path());

    const Dataset plainOnly(options, QStringLiteral("hn"), 1, model.latentDownsampling());
    LatentCache withoutFlips(plainOnly, model, LatentSampling::Deterministic, 1);
    int lastTotal = 0;
    withoutFlips.encodeAll([&](int, int total) {
        lastTotal = total;
        return true;
    });
    QCOMPARE(lastTotal, 3);

    options.flipProbability = 0.5;
    const Dataset flipping(options, QStringLiteral("hn"), 1, model.latentDownsampling());
    LatentCache withFlips(flipping, model, LatentSampling::Deterministic, 1);
    withFlips.encodeAll([&](int, int total) {
        lastTotal = total;
        return true;
    });
    QCOMPARE(lastTotal, 6);
    QCOMPARE(withFlips.bytes(), 2 * withoutFlips.bytes());
    // The VAE is not mirror-symmetric, but the mean of a mirrored image is close to mirrored.
    QVERIFY(!withFlips.latent(0, true, 0).equal(withFlips.latent(0, false, 0)));

    LatentCache cancelled(flipping, model, LatentSampling::Deterministic, 1);
    STUDIO_VERIFY_ERROR(cancelled.encodeAll([](int done, int) { return done < 2; }), "cancelled");
}

QTEST_GUILESS_MAIN(TestDataset)
#include "TestDataset.moc"
