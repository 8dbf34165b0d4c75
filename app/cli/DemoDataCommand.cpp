// hnstudio demo-data: the built-in demo's captioned pictures (core/demo/ShapeScenes.h), and the
// vocabulary its text encoder is trained with, learnt from every caption a scene can have.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/Error.h"
#include "core/demo/ShapeScenes.h"
#include "core/io/AtomicFile.h"
#include "core/io/PngFile.h"
#include "core/text/BpeVocabularyBuilder.h"

#include <QDir>
#include <QFileInfo>

namespace studio::cli {

namespace {

constexpr qint64 kMaxCount = 100000; // five-digit file names

QList<QCommandLineOption> demoDataOptions()
{
    return {
        {QStringLiteral("style"),
         QStringLiteral("plain (flat colours, what the demo base model learns) or ink (thick "
                        "outlines, pastel palette, hatching: the demo hypernetwork's style). "
                        "Default: plain."),
         QStringLiteral("STYLE"), QStringLiteral("plain")},
        {QStringLiteral("count"), QStringLiteral("Number of pictures. Default: 100."),
         QStringLiteral("N"), QStringLiteral("100")},
        {QStringLiteral("size"), QStringLiteral("Side of the square pictures. Default: 64."),
         QStringLiteral("N"), QStringLiteral("64")},
        {QStringLiteral("seed"),
         QStringLiteral("Seed of the scenes: the same seed gives the same files. Default: 0."),
         QStringLiteral("S"), QStringLiteral("0")},
        {QStringLiteral("vocab-out"),
         QStringLiteral("Also write vocab.json and merges.txt to DIR: a CLIP BPE vocabulary "
                        "learnt from every caption a demo scene can have (the same for any "
                        "count and seed). OUT_FOLDER may then be left out."),
         QStringLiteral("DIR")},
        {QStringLiteral("force"), QStringLiteral("Write into OUT_FOLDER even if it is not empty.")},
    };
}

struct DemoDataOptions
{
    QString folder; // empty: vocabulary only
    demo::SceneStyle style = demo::SceneStyle::Plain;
    qint64 count = 0;
    int size = 0;
    uint64_t seed = 0;
};

DemoDataOptions parseOptions(const QCommandLineParser& parser)
{
    const QStringList positional = parser.positionalArguments();
    const bool vocabularyOnly = positional.isEmpty() && parser.isSet(QStringLiteral("vocab-out"));
    if (positional.size() > 1 || (positional.isEmpty() && !vocabularyOnly)) {
        failUsage(QStringLiteral("give exactly one output folder (or only --vocab-out DIR)"));
    }
    DemoDataOptions options;
    options.folder = vocabularyOnly ? QString() : positional.front();
    try {
        options.style = demo::parseSceneStyle(parser.value(QStringLiteral("style")));
    } catch (const Error& error) {
        failUsage(QStringLiteral("--style: ") + error.message());
    }
    options.count = integerOption(parser, QStringLiteral("count"));
    if (options.count < 1 || options.count > kMaxCount) {
        failUsage(QStringLiteral("--count: give 1 to %1 pictures").arg(kMaxCount));
    }
    const qint64 size = integerOption(parser, QStringLiteral("size"));
    if (size < 16 || size > 4096) {
        failUsage(QStringLiteral("--size: give 16 to 4096 pixels"));
    }
    options.size = int(size);
    options.seed = uint64_t(integerOption(parser, QStringLiteral("seed")));
    return options;
}

// Refuses to mix the pictures into a folder that holds other files, unless forced.
void checkFolder(const QString& folder, bool force)
{
    const QDir dir(folder);
    const bool holdsFiles =
        dir.exists() && !dir.entryList(QDir::AllEntries | QDir::NoDotAndDotDot).isEmpty();
    if (holdsFiles && !force) {
        failUsage(QStringLiteral("'%1' is not empty; use --force to write into it anyway")
                      .arg(QDir::toNativeSeparators(folder)));
    }
    if (!QDir().mkpath(folder)) {
        throw Error(QStringLiteral("cannot create the folder '%1'; check that its parent exists "
                                   "and is writable")
                        .arg(QDir::toNativeSeparators(folder)));
    }
}

void writePictures(const DemoDataOptions& options)
{
    const QDir dir(options.folder);
    for (qint64 index = 0; index < options.count; ++index) {
        const demo::ShapeScene scene = demo::randomScene(options.seed, uint64_t(index));
        const QString stem = QStringLiteral("%1").arg(index, 5, 10, QLatin1Char('0'));
        io::writePng(dir.filePath(stem + QStringLiteral(".png")),
                     demo::renderScene(scene, options.style, options.size));
        io::writeFileAtomically(dir.filePath(stem + QStringLiteral(".txt")),
                                demo::sceneCaption(scene).toUtf8() + '\n');
    }
}

int demoData(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("Writes the built-in demo's captioned pictures of shapes, NNNNN.png with "
                       "NNNNN.txt, in the plain or the ink style."));
    parser.addHelpOption();
    parser.addOptions(demoDataOptions());
    parser.addPositionalArgument(QStringLiteral("OUT_FOLDER"),
                                 QStringLiteral("The folder to write the pictures to."));
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    const DemoDataOptions options = parseOptions(parser);
    if (!options.folder.isEmpty()) {
        checkFolder(options.folder, parser.isSet(QStringLiteral("force")));
        writePictures(options);
        out() << "wrote " << options.count << ' ' << demo::sceneStyleName(options.style)
              << " pictures to '" << QDir::toNativeSeparators(options.folder) << "'\n";
    }
    if (parser.isSet(QStringLiteral("vocab-out"))) {
        const QString folder = parser.value(QStringLiteral("vocab-out"));
        const BpeVocabulary vocabulary = learnBpeVocabulary(demo::allSceneCaptions());
        writeBpeVocabulary(vocabulary, folder);
        out() << "wrote a vocabulary of " << vocabulary.tokens.size() << " tokens to '"
              << QDir::toNativeSeparators(folder) << "'\n";
    }
    out().flush();
    return kExitOk;
}

} // namespace

int runDemoData(const QStringList& arguments)
{
    return runCommand(QStringLiteral("demo-data"), [&] { return demoData(arguments); });
}

} // namespace studio::cli
