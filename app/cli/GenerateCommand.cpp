// hnstudio generate: text to image with 0, 1 or more hypernetworks, written as PNGs that carry
// the webui's infotext in their "parameters" chunk.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/Error.h"
#include "core/diffusion/ImageGenerator.h"
#include "core/diffusion/Sampler.h"
#include "core/diffusion/StableDiffusion.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/PngFile.h"
#include "core/text/ClipTokenizer.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QFileInfo>
#include <QRandomGenerator>
#include <QRegularExpression>

#include <algorithm>
#include <cmath>
#include <limits>

namespace studio::cli {

namespace {

struct HypernetworkArgument
{
    QString path;
    double strength = 1.0;
};

// "FILE.pt" or "FILE.pt:0.5": a number after the last colon is the strength (a colon followed by
// anything else belongs to the path, as in "C:\models\a.pt").
HypernetworkArgument parseHypernetworkArgument(const QString& argument)
{
    const qsizetype colon = argument.lastIndexOf(QLatin1Char(':'));
    if (colon > 0) {
        bool ok = false;
        const double strength = argument.mid(colon + 1).toDouble(&ok);
        if (ok) {
            if (!std::isfinite(strength)) {
                failUsage(QStringLiteral("--hypernetwork '%1': the strength should be a finite "
                                         "number, like FILE.pt:0.5")
                              .arg(argument));
            }
            return {argument.left(colon), strength};
        }
    }
    return {argument, 1.0};
}

// Widths whose attention a hypernetwork can act on: the text width (cross-attention) and the
// width of each level with transformers (self-attention).
std::vector<int> attentionWidths(const UNetConfig& unet)
{
    std::vector<int> widths = {unet.contextDim};
    int ds = 1;
    for (const int mult : unet.channelMult) {
        const auto& resolutions = unet.attentionResolutions;
        if (std::find(resolutions.begin(), resolutions.end(), ds) != resolutions.end()) {
            widths.push_back(unet.modelChannels * mult);
        }
        ds *= 2;
    }
    return widths;
}

// The webui applies a hypernetwork without a module for the model's widths as a no-op; say so,
// since it is nearly always a hypernetwork made for another model family.
void warnIfUnused(const Hypernetwork& hypernetwork, const QString& path, const UNetConfig& unet)
{
    for (const int width : attentionWidths(unet)) {
        if (hypernetwork.find(width) != nullptr) {
            return;
        }
    }
    err() << "hnstudio generate: warning: '" << QDir::toNativeSeparators(path)
          << "' has no module for this model's attention widths; it changes nothing\n";
    err().flush();
}

std::vector<Hypernetwork> loadHypernetworks(const QCommandLineParser& parser,
                                            const StableDiffusion& model)
{
    std::vector<Hypernetwork> stack;
    for (const QString& argument : parser.values(QStringLiteral("hypernetwork"))) {
        const HypernetworkArgument parsed = parseHypernetworkArgument(argument);
        if (!QFileInfo(parsed.path).isFile()) {
            throw Error(QStringLiteral("--hypernetwork: '%1' is not a file; give FILE.pt or "
                                       "FILE.pt:STRENGTH")
                            .arg(QDir::toNativeSeparators(parsed.path)));
        }
        Hypernetwork hypernetwork = loadHypernetwork(parsed.path);
        hypernetwork.setStrength(parsed.strength);
        hypernetwork.train(false);
        hypernetwork.to(model.device());
        warnIfUnused(hypernetwork, parsed.path, model.config().unet);
        stack.push_back(hypernetwork);
    }
    return stack;
}

int positiveOption(const QCommandLineParser& parser, const QString& name, int fallback)
{
    if (!parser.isSet(name)) {
        return fallback;
    }
    return static_cast<int>(integerOptionIn(parser, name, 1, 1000000));
}

GenerationRequest requestFrom(const QCommandLineParser& parser)
{
    GenerationRequest request;
    request.prompt = parser.value(QStringLiteral("prompt"));
    request.negativePrompt = parser.value(QStringLiteral("negative"));
    const qint64 seed =
        parser.isSet(QStringLiteral("seed")) ? integerOption(parser, QStringLiteral("seed")) : -1;
    // -1 picks a seed, as the webui does; the infotext records the one used.
    request.seed = seed == -1 ? static_cast<int64_t>(QRandomGenerator::global()->bounded(
                                    std::numeric_limits<quint32>::max()))
                              : seed;
    if (request.seed < 0) {
        failUsage(QStringLiteral("--seed: %1 is negative; give 0 or more, or -1 for a random "
                                 "seed")
                      .arg(seed));
    }
    if (parser.isSet(QStringLiteral("sampler"))) {
        try {
            request.sampler.kind = parseSamplerKind(parser.value(QStringLiteral("sampler")));
        } catch (const Error& error) {
            failUsage(QStringLiteral("--sampler: ") + error.message());
        }
    }
    request.sampler.steps = positiveOption(parser, QStringLiteral("steps"), 20);
    if (request.sampler.kind == SamplerKind::Ddim) {
        try {
            ddimTimesteps(request.sampler.steps);
        } catch (const Error& error) {
            failUsage(QStringLiteral("--steps: ") + error.message());
        }
    }
    if (parser.isSet(QStringLiteral("cfg"))) {
        request.sampler.cfgScale = doubleOption(parser, QStringLiteral("cfg"));
    }
    if (parser.isSet(QStringLiteral("eta"))) {
        request.sampler.eta = doubleOption(parser, QStringLiteral("eta"));
        if (request.sampler.eta < 0) {
            failUsage(QStringLiteral("--eta: give 0 or more (default: 0 for ddim, 1 for "
                                     "euler_a)"));
        }
    }
    // 0 until the model is loaded: then its native size (useNativeSize).
    request.width = positiveOption(parser, QStringLiteral("width"), 0);
    request.height = positiveOption(parser, QStringLiteral("height"), 0);
    request.batchSize = positiveOption(parser, QStringLiteral("batch"), 1);
    return request;
}

QString tokenizerPath(const QCommandLineParser& parser)
{
    if (parser.isSet(QStringLiteral("tokenizer"))) {
        return parser.value(QStringLiteral("tokenizer"));
    }
    try {
        return ClipTokenizer::locate(parser.value(QStringLiteral("model")));
    } catch (const Error& error) {
        throw Error(error.message() + QStringLiteral(" Or pass --tokenizer PATH."));
    }
}

std::unique_ptr<StableDiffusion> loadModel(const QCommandLineParser& parser)
{
    StableDiffusionOptions options;
    options.checkpointPath = parser.value(QStringLiteral("model"));
    options.configPath = parser.value(QStringLiteral("config"));
    try {
        options.device = parseDevice(parser.value(QStringLiteral("device")));
        options.dtype = parsePrecision(parser.value(QStringLiteral("precision")));
    } catch (const Error& error) {
        failUsage(error.message());
    }
    options.tokenizerPath = tokenizerPath(parser);
    return StableDiffusion::load(options);
}

// The webui always defaults to 512; a model's own size is right for SD2 768 models too, and
// keeps a tiny test model from being asked for images it cannot hold in memory.
void useNativeSize(GenerationRequest& request, const StableDiffusion& model,
                   const QCommandLineParser& parser)
{
    const int native = nativeImageSize(model, parser.value(QStringLiteral("model")),
                                       parser.value(QStringLiteral("config")));
    request.width = request.width == 0 ? native : request.width;
    request.height = request.height == 0 ? native : request.height;
}

// webui's save_image numbering in a folder: NNNNN-SEED.png, NNNNN after the highest there.
int nextSequenceNumber(const QDir& folder)
{
    static const QRegularExpression numbered(QStringLiteral("^(\\d+)-"));
    int next = 0;
    for (const QString& name : folder.entryList(QDir::Files)) {
        const QRegularExpressionMatch match = numbered.match(name);
        if (match.hasMatch()) {
            next = std::max(next, match.captured(1).toInt() + 1);
        }
    }
    return next;
}

// A .png path names the file (NAME-i.png for each image of a batch); anything else is a
// folder, created when missing.
QStringList outputPaths(const QString& output, const GenerationRequest& request)
{
    QStringList paths;
    if (output.endsWith(QStringLiteral(".png"), Qt::CaseInsensitive)) {
        const QString stem = output.left(output.size() - 4);
        for (int i = 0; i < request.batchSize; ++i) {
            paths << (request.batchSize == 1 ? output
                                             : QStringLiteral("%1-%2.png").arg(stem).arg(i));
        }
        return paths;
    }
    QDir folder(output);
    if (!folder.mkpath(QStringLiteral("."))) {
        throw Error(QStringLiteral("--output: cannot create the folder '%1'")
                        .arg(QDir::toNativeSeparators(output)));
    }
    const int first = nextSequenceNumber(folder);
    for (int i = 0; i < request.batchSize; ++i) {
        paths << folder.filePath(QStringLiteral("%1-%2.png")
                                     .arg(first + i, 5, 10, QLatin1Char('0'))
                                     .arg(request.seed + i));
    }
    return paths;
}

void requireOptions(const QCommandLineParser& parser)
{
    for (const char* required : {"model", "prompt", "output"}) {
        if (!parser.isSet(QString::fromLatin1(required))) {
            failUsage(QStringLiteral("--%1 is required").arg(QString::fromLatin1(required)));
        }
    }
    if (!parser.positionalArguments().isEmpty()) {
        failUsage(QStringLiteral("unexpected argument '%1'; quote the prompt and give it with "
                                 "--prompt")
                      .arg(parser.positionalArguments().front()));
    }
}

void addOptions(QCommandLineParser& parser)
{
    parser.addOptions({
        {QStringLiteral("model"),
         QStringLiteral("The Stable Diffusion checkpoint (.safetensors or .ckpt)."),
         QStringLiteral("CKPT")},
        {QStringLiteral("config"),
         QStringLiteral("The ldm YAML config. Default: the .yaml beside the checkpoint, else the "
                        "architecture is detected from the weights."),
         QStringLiteral("YAML")},
        {QStringLiteral("tokenizer"),
         QStringLiteral("The CLIP vocabulary (bpe_simple_vocab_16e6.txt[.gz], or vocab.json "
                        "with merges.txt). Default: searched beside the checkpoint."),
         QStringLiteral("PATH")},
        {QStringLiteral("prompt"), QStringLiteral("The prompt (webui emphasis syntax)."),
         QStringLiteral("TEXT")},
        {QStringLiteral("negative"), QStringLiteral("The negative prompt. Default: none."),
         QStringLiteral("TEXT")},
        {QStringLiteral("seed"),
         QStringLiteral("Seed of the first image; image i uses seed + i. Default: -1, random."),
         QStringLiteral("N")},
        {QStringLiteral("sampler"), QStringLiteral("euler_a (default) or ddim."),
         QStringLiteral("NAME")},
        {QStringLiteral("steps"), QStringLiteral("Sampler steps. Default: 20."),
         QStringLiteral("N")},
        {QStringLiteral("cfg"), QStringLiteral("Classifier-free guidance scale. Default: 7."),
         QStringLiteral("S")},
        {QStringLiteral("eta"),
         QStringLiteral("Noise of each step: DDIM eta (default 0), Euler a's ancestral eta "
                        "(default 1)."),
         QStringLiteral("E")},
        {QStringLiteral("width"),
         QStringLiteral("Image width, a multiple of 8 (of the VAE's factor). Default: the "
                        "model's own size (512 for SD1, 768 for SD2 v models)."),
         QStringLiteral("W")},
        {QStringLiteral("height"),
         QStringLiteral("Image height, a multiple of 8 (of the VAE's factor). Default: the "
                        "model's own size."),
         QStringLiteral("H")},
        {QStringLiteral("batch"), QStringLiteral("Images to make in one batch. Default: 1."),
         QStringLiteral("N")},
        {QStringLiteral("hypernetwork"),
         QStringLiteral("A hypernetwork, optionally with its strength (FILE.pt:0.5, default 1). "
                        "Repeat to stack several; they apply in the order given."),
         QStringLiteral("FILE.pt[:S]")},
        {QStringLiteral("device"), QStringLiteral("cpu, cuda or cuda:N. Default: cpu."),
         QStringLiteral("DEVICE"), QStringLiteral("cpu")},
        {QStringLiteral("precision"),
         QStringLiteral("Weights of the model: fp32, fp16 (CUDA) or bf16. Default: fp32."),
         QStringLiteral("P"), QStringLiteral("fp32")},
        {{QStringLiteral("o"), QStringLiteral("output"), QStringLiteral("out")},
         QStringLiteral("A .png file (NAME-i.png for each image of a batch) or a folder, where "
                        "images are numbered like the webui's (00000-SEED.png)."),
         QStringLiteral("FOLDER_OR_FILE.png")},
    });
}

int generate(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "Makes images from a prompt with Euler a or DDIM and classifier-free guidance, seeded\n"
        "like the webui's txt2img (same seed, settings and model: the same images), with 0, 1\n"
        "or more hypernetworks. Each PNG carries the webui's infotext in its parameters chunk."));
    parser.addHelpOption();
    addOptions(parser);
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    requireOptions(parser);
    GenerationRequest request = requestFrom(parser);
    const QStringList paths = outputPaths(parser.value(QStringLiteral("output")), request);

    const std::unique_ptr<StableDiffusion> model = loadModel(parser);
    useNativeSize(request, *model, parser);
    const std::vector<Hypernetwork> stack = loadHypernetworks(parser, *model);
    std::vector<const Hypernetwork*> applied;
    for (const Hypernetwork& hypernetwork : stack) {
        applied.push_back(&hypernetwork);
    }
    model->unet()->runtime().hypernetworks = applied;

    const GeneratedImages images = generateImages(*model, request, applied);
    for (int i = 0; i < request.batchSize; ++i) {
        io::writePng(paths[i], images.pixels[i],
                     {{QStringLiteral("parameters"), images.infotexts[size_t(i)]}});
        out() << QDir::toNativeSeparators(paths[i]) << '\n';
    }
    out().flush();
    return kExitOk;
}

} // namespace

int runGenerate(const QStringList& arguments)
{
    return runCommand(QStringLiteral("generate"), [&] { return generate(arguments); });
}

} // namespace studio::cli
