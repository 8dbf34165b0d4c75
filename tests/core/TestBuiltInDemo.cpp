// The built-in demo as it ships in resources/demo (docs/demo.md): its files are complete and
// load through the ordinary loader, its base model draws what a prompt asks for, and its demo
// run teaches a hypernetwork the ink style, measured by the style statistics of
// core/demo/StyleStatistics.h on the same prompts and seeds with and without it.

#include "core/demo/DemoFiles.h"
#include "core/demo/StyleStatistics.h"
#include "core/diffusion/ImageGenerator.h"
#include "core/io/PngFile.h"
#include "core/train/Trainer.h"

#include <ATen/ATen.h>

#include <QDateTime>
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <QObject>
#include <QTemporaryDir>
#include <QTest>

using namespace studio;

namespace {

// Prompts and seeds the style check generates, with and without the trained hypernetwork.
const QStringList kStylePrompts = {
    QStringLiteral("a red circle on a blue background"),
    QStringLiteral("two yellow squares on a green background, left"),
    QStringLiteral("a purple star on a white background"),
    QStringLiteral("three orange triangles on a black background, top"),
};
constexpr int kStyleSeeds = 2;

at::Tensor toTensor(const GeneratedImage& image)
{
    return at::from_blob(const_cast<char*>(image.rgb.constData()), {image.height, image.width, 3},
                         at::kByte)
        .clone();
}

// The mean of red minus blue (0 to 255 scale) inside the central square of side `fraction`
// of the picture, or outside it when `inside` is false.
double redMinusBlue(const at::Tensor& rgb, double fraction, bool inside)
{
    const int64_t side = rgb.size(0);
    const int64_t margin = int64_t(double(side) * (1.0 - fraction) / 2.0);
    at::Tensor mask = at::zeros({side, side}, at::kBool);
    mask.slice(0, margin, side - margin).slice(1, margin, side - margin).fill_(true);
    if (!inside) {
        mask = mask.logical_not();
    }
    const at::Tensor difference =
        rgb.select(2, 0).to(at::kDouble) - rgb.select(2, 2).to(at::kDouble);
    return difference.masked_select(mask).mean().item<double>();
}

ImageRequest requestFor(const QString& prompt, int64_t seed)
{
    ImageRequest request;
    request.prompt = prompt;
    request.seed = seed;
    request.sampler = QStringLiteral("ddim");
    request.steps = 20;
    request.cfgScale = 5.0;
    return request;
}

// Every file under `folder` with its size and modification time, to see that nothing changed.
QStringList folderSnapshot(const QString& folder)
{
    QStringList entries;
    QDirIterator it(folder, QDir::Files | QDir::Dirs | QDir::NoDotAndDotDot,
                    QDirIterator::Subdirectories);
    while (it.hasNext()) {
        const QFileInfo info(it.next());
        entries << QStringLiteral("%1 %2 %3")
                       .arg(info.filePath())
                       .arg(info.size())
                       .arg(info.lastModified().toMSecsSinceEpoch());
    }
    entries.sort();
    return entries;
}

} // namespace

class TestBuiltInDemo : public QObject
{
    Q_OBJECT

private:
    QString m_folder;
    RunConfig m_run;

    GeneratorModelOptions modelOptions() const
    {
        GeneratorModelOptions options;
        options.checkpoint = m_run.model.checkpoint;
        options.config = m_run.model.config;
        options.tokenizer = m_run.model.tokenizer;
        return options;
    }

    demo::StyleStatistics generatedStatistics(ImageGenerator& generator,
                                              const QString& hypernetwork)
    {
        std::vector<at::Tensor> images;
        for (const QString& prompt : kStylePrompts) {
            for (int seed = 1; seed <= kStyleSeeds; ++seed) {
                ImageRequest request = requestFor(prompt, seed);
                if (!hypernetwork.isEmpty()) {
                    request.hypernetworks.push_back({hypernetwork, 1.0});
                }
                images.push_back(toTensor(generator.generate(request)));
            }
        }
        return demo::styleStatistics(at::stack(images));
    }

private Q_SLOTS:
    void initTestCase()
    {
        m_folder = demo::locateDemoFolder();
        QVERIFY2(!m_folder.isEmpty(), "resources/demo/demo-run.json not found");
        m_run = demo::demoRunConfig(m_folder, QDir::tempPath());
    }

    void shippedFilesAreComplete()
    {
        const QDir folder(m_folder);
        for (const char* name : {"demo.safetensors", "demo.yaml", "vocab.json", "merges.txt",
                                 "demo-run.json", "ink-template.txt"}) {
            QVERIFY2(QFileInfo(folder.filePath(QLatin1String(name))).isFile(), name);
        }
        QVERIFY(QFileInfo(m_run.model.checkpoint).size() < 30 * 1024 * 1024);
        QCOMPARE(QFileInfo(m_run.model.checkpoint).absoluteFilePath(),
                 folder.absoluteFilePath(QStringLiteral("demo.safetensors")));

        const QStringList pictures =
            QDir(m_run.dataset.folder).entryList({QStringLiteral("*.png")}, QDir::Files);
        QVERIFY2(pictures.size() >= 20, qPrintable(m_run.dataset.folder));
        for (const QString& picture : pictures) {
            const QString caption = QFileInfo(picture).completeBaseName() + QStringLiteral(".txt");
            QVERIFY2(QFile::exists(QDir(m_run.dataset.folder).filePath(caption)),
                     qPrintable(caption));
        }

        const QString description = describeCheckpoint(m_run.model.checkpoint, m_run.model.config);
        QVERIFY2(description.contains(QStringLiteral("SD1")), qPrintable(description));
    }

    void demoRunWritesIntoTheOutputRootOnly()
    {
        QTemporaryDir root;
        const RunConfig config = demo::demoRunConfig(m_folder, root.path());
        QCOMPARE(config.output.folder, QDir(root.path()).filePath(QStringLiteral("demo-run")));
        QCOMPARE(config.model.checkpoint, m_run.model.checkpoint);
        QCOMPARE(config.dataset.folder, m_run.dataset.folder);
    }

    void environmentNamesAnotherDemo()
    {
        QTemporaryDir other;
        QFile marker(QDir(other.path()).filePath(QLatin1String(demo::kDemoRunFileName)));
        QVERIFY(marker.open(QIODevice::WriteOnly));
        marker.close();
        const QByteArray before = qgetenv("HNSTUDIO_DEMO_DIR");
        qputenv("HNSTUDIO_DEMO_DIR", QFile::encodeName(other.path()));
        const QString found = demo::locateDemoFolder();
        qunsetenv("HNSTUDIO_DEMO_DIR");
        const QString withoutVariable = demo::locateDemoFolder();
        if (!before.isEmpty()) {
            qputenv("HNSTUDIO_DEMO_DIR", before);
        }
        QCOMPARE(found, QDir::cleanPath(other.path()));
        QVERIFY(withoutVariable != found);
        QVERIFY(!withoutVariable.isEmpty());
    }

    // The base model binds colours to the shape and to the background as the prompt says.
    void promptColoursReachThePicture()
    {
        ImageGenerator generator(modelOptions());
        for (int64_t seed = 1; seed <= 3; ++seed) {
            const at::Tensor redOnBlue = toTensor(generator.generate(
                requestFor(QStringLiteral("a red circle on a blue background"), seed)));
            const at::Tensor blueOnRed = toTensor(generator.generate(
                requestFor(QStringLiteral("a blue circle on a red background"), seed)));
            const double centreRed = redMinusBlue(redOnBlue, 0.25, true);
            const double borderRed = redMinusBlue(redOnBlue, 0.6, false);
            const QString numbers = QStringLiteral("seed %1: red-on-blue centre %2 border %3, "
                                                   "blue-on-red centre %4 border %5")
                                        .arg(seed)
                                        .arg(centreRed)
                                        .arg(borderRed)
                                        .arg(redMinusBlue(blueOnRed, 0.25, true))
                                        .arg(redMinusBlue(blueOnRed, 0.6, false));
            qInfo().noquote() << numbers;
            QVERIFY2(centreRed > 40.0 && borderRed < -40.0, qPrintable(numbers));
            QVERIFY2(redMinusBlue(blueOnRed, 0.25, true) < -40.0, qPrintable(numbers));
            QVERIFY2(redMinusBlue(blueOnRed, 0.6, false) > 40.0, qPrintable(numbers));
        }
    }

    // The demo run as shipped (previews off, to save time) moves generated pictures toward the
    // ink dataset: the style statistics of the same prompts and seeds, with the trained
    // hypernetwork and without, against those of the dataset itself (docs/demo.md).
    void demoRunTeachesTheInkStyle()
    {
        QTemporaryDir root;
        RunConfig config = demo::demoRunConfig(m_folder, root.path());
        config.output.previewEvery = 0;
        const QStringList shippedFiles = folderSnapshot(m_folder);
        Trainer trainer(config, {});
        const TrainingResult result = trainer.run();
        QCOMPARE(folderSnapshot(m_folder), shippedFiles);
        QCOMPARE(result.status, TrainingStatus::Finished);
        QVERIFY(QFile::exists(result.lastSave));

        std::vector<at::Tensor> inkPictures;
        const QDir ink(config.dataset.folder);
        for (const QString& name : ink.entryList({QStringLiteral("*.png")}, QDir::Files)) {
            inkPictures.push_back(io::readImageRgb(ink.filePath(name)));
        }
        const demo::StyleStatistics target = demo::styleStatistics(at::stack(inkPictures));

        ImageGenerator generator(modelOptions());
        const demo::StyleStatistics base = generatedStatistics(generator, QString());
        const demo::StyleStatistics trained = generatedStatistics(generator, result.lastSave);
        const QString numbers =
            QStringLiteral("palette distance: ink %1, base %2, trained %3; edge density: ink %4, "
                           "base %5, trained %6")
                .arg(target.paletteDistance)
                .arg(base.paletteDistance)
                .arg(trained.paletteDistance)
                .arg(target.edgeDensity)
                .arg(base.edgeDensity)
                .arg(trained.edgeDensity);
        qInfo().noquote() << numbers;
        // The outlines come first: the edge density closes most of its gap to the dataset's.
        // The pastel palette comes slowly (the base model never drew a pastel), but it moves.
        const double baseEdgeGap = std::abs(base.edgeDensity - target.edgeDensity);
        const double trainedEdgeGap = std::abs(trained.edgeDensity - target.edgeDensity);
        QVERIFY2(trainedEdgeGap < 0.6 * baseEdgeGap, qPrintable(numbers));
        const double basePaletteGap = std::abs(base.paletteDistance - target.paletteDistance);
        const double trainedPaletteGap = std::abs(trained.paletteDistance - target.paletteDistance);
        QVERIFY2(trainedPaletteGap < basePaletteGap, qPrintable(numbers));
    }
};

QTEST_GUILESS_MAIN(TestBuiltInDemo)
#include "TestBuiltInDemo.moc"
