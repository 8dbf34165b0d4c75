// hnstudio probe: runs one component on tensors read from a safetensors file and writes its
// outputs, to check that a file loads and computes what the original code computes.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/Error.h"
#include "core/diffusion/ModelLoader.h"
#include "core/diffusion/Sampler.h"
#include "core/diffusion/StableDiffusion.h"
#include "core/diffusion/Vae.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/SafeTensors.h"
#include "core/io/TensorSource.h"
#include "core/text/ClipTextEncoder.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <QDir>

namespace studio::cli {

namespace {

const QString kContextPrefix = QStringLiteral("context_");

// "FILE.pt" or "FILE.pt:0.5" (a trailing number after the last colon is the strength).
std::pair<QString, double> parseHypernetworkArgument(const QString& argument, double fallback)
{
    const qsizetype colon = argument.lastIndexOf(QLatin1Char(':'));
    if (colon > 0) {
        bool ok = false;
        const double strength = argument.mid(colon + 1).toDouble(&ok);
        if (ok) {
            return {argument.left(colon), strength};
        }
    }
    return {argument, fallback};
}

std::vector<Hypernetwork> loadChain(const QCommandLineParser& parser)
{
    const double strength = parser.isSet(QStringLiteral("strength"))
                                ? doubleOption(parser, QStringLiteral("strength"))
                                : 1.0;
    std::vector<Hypernetwork> chain;
    for (const QString& argument : parser.values(QStringLiteral("hypernetwork"))) {
        const auto [path, fileStrength] = parseHypernetworkArgument(argument, strength);
        Hypernetwork hypernetwork = loadHypernetwork(path);
        hypernetwork.setStrength(fileStrength);
        hypernetwork.train(false);
        chain.push_back(hypernetwork);
    }
    if (chain.empty()) {
        failUsage(QStringLiteral("--hypernetwork is required"));
    }
    return chain;
}

int probeHypernetwork(const QCommandLineParser& parser)
{
    const std::vector<Hypernetwork> chain = loadChain(parser);
    std::vector<const Hypernetwork*> chainPointers;
    for (const Hypernetwork& hypernetwork : chain) {
        chainPointers.push_back(&hypernetwork);
    }

    const QString inputPath = parser.value(QStringLiteral("input"));
    const io::SafeTensorsFile input = io::SafeTensorsFile::open(inputPath);
    std::vector<std::pair<QString, at::Tensor>> outputs;
    torch::NoGradGuard noGrad;
    for (const QString& name : input.names()) {
        if (!name.startsWith(kContextPrefix)) {
            continue;
        }
        const QString size = name.mid(kContextPrefix.size());
        const auto [k, v] = applyHypernetworks(chainPointers, input.tensor(name, at::kFloat));
        outputs.emplace_back(QStringLiteral("k_") + size, k.contiguous());
        outputs.emplace_back(QStringLiteral("v_") + size, v.contiguous());
    }
    if (outputs.empty()) {
        throw Error(QStringLiteral("'%1' has no tensor named context_<width>")
                        .arg(QDir::toNativeSeparators(inputPath)));
    }

    io::writeSafeTensors(parser.value(QStringLiteral("output")), outputs);
    return kExitOk;
}

at::Tensor requireTensor(const io::SafeTensorsFile& file, const QString& name)
{
    if (!file.contains(name)) {
        throw Error(QStringLiteral("'%1' has no tensor '%2'")
                        .arg(QDir::toNativeSeparators(file.path()), name));
    }
    return file.tensor(name, at::kFloat);
}

std::unique_ptr<io::TensorSource> openModel(const QCommandLineParser& parser)
{
    const QString modelPath = parser.value(QStringLiteral("model"));
    if (modelPath.isEmpty()) {
        failUsage(QStringLiteral("--model is required for this component"));
    }
    return io::openTensorSource(modelPath);
}

ModelConfig modelConfig(const QCommandLineParser& parser, const io::TensorSource& source)
{
    return resolveModelConfig(parser.value(QStringLiteral("model")),
                              parser.value(QStringLiteral("config")), source);
}

int probeUnet(const QCommandLineParser& parser)
{
    const auto source = openModel(parser);
    ModelConfig config = modelConfig(parser, *source);
    UNetModel unet = loadUNet(*source, config);

    std::vector<Hypernetwork> chain;
    if (parser.isSet(QStringLiteral("hypernetwork"))) {
        chain = loadChain(parser);
    }
    for (const Hypernetwork& hypernetwork : chain) {
        unet->runtime().hypernetworks.push_back(&hypernetwork);
    }

    const io::SafeTensorsFile input =
        io::SafeTensorsFile::open(parser.value(QStringLiteral("input")));
    torch::NoGradGuard noGrad;
    const at::Tensor out = unet->forward(requireTensor(input, QStringLiteral("x")),
                                         requireTensor(input, QStringLiteral("timesteps")),
                                         requireTensor(input, QStringLiteral("context")));
    io::writeSafeTensors(parser.value(QStringLiteral("output")), {{QStringLiteral("out"), out}});
    return kExitOk;
}

int probeVae(const QCommandLineParser& parser, bool encode)
{
    const auto source = openModel(parser);
    const ModelConfig config = modelConfig(parser, *source);
    AutoencoderKL vae = loadVae(*source, findVaePrefix(*source), config.scaleFactor);
    const io::SafeTensorsFile input =
        io::SafeTensorsFile::open(parser.value(QStringLiteral("input")));

    torch::NoGradGuard noGrad;
    std::vector<std::pair<QString, at::Tensor>> outputs;
    if (encode) {
        const VaePosterior posterior = vae->encode(requireTensor(input, QStringLiteral("image")));
        outputs = {{QStringLiteral("posterior_mean"), posterior.mean},
                   {QStringLiteral("posterior_logvar"), posterior.logvar}};
    } else {
        outputs = {
            {QStringLiteral("decoded"), vae->decode(requireTensor(input, QStringLiteral("z")))}};
    }
    io::writeSafeTensors(parser.value(QStringLiteral("output")), outputs);
    return kExitOk;
}

int probeTextEncoder(const QCommandLineParser& parser)
{
    const auto source = openModel(parser);
    const ModelConfig config = modelConfig(parser, *source);
    const QVariant heads = config.textParams.value(QStringLiteral("heads"));
    DetectedClipText detected = detectClipTextEncoder(
        *source, heads.isValid() ? std::optional<int>(heads.toInt()) : std::nullopt);
    if (config.textParams.value(QStringLiteral("layer")).toString() ==
        QLatin1String("penultimate")) {
        detected.config.clipSkip = 2;
    }
    if (parser.isSet(QStringLiteral("clip-skip"))) {
        if (detected.config.layout != ClipTextLayout::Sd1HuggingFace) {
            failUsage(QStringLiteral("--clip-skip applies to SD1 models; SD2 always uses the "
                                     "penultimate layer"));
        }
        detected.config.clipSkip =
            static_cast<int>(integerOption(parser, QStringLiteral("clip-skip")));
    }
    ClipTextEncoder encoder = loadClipTextEncoder(*source, detected.config, detected.prefix);
    const io::SafeTensorsFile input =
        io::SafeTensorsFile::open(parser.value(QStringLiteral("input")));

    torch::NoGradGuard noGrad;
    const at::Tensor ids = requireTensor(input, QStringLiteral("input_ids")).to(at::kLong);
    io::writeSafeTensors(parser.value(QStringLiteral("output")),
                         {{QStringLiteral("context"), encoder->forward(ids)}});
    return kExitOk;
}

SamplerSettings samplerSettings(const QCommandLineParser& parser)
{
    SamplerSettings settings;
    settings.kind = SamplerKind::Ddim;
    if (parser.isSet(QStringLiteral("sampler"))) {
        try {
            settings.kind = parseSamplerKind(parser.value(QStringLiteral("sampler")));
        } catch (const Error& error) {
            failUsage(QStringLiteral("--sampler: ") + error.message());
        }
    }
    if (parser.isSet(QStringLiteral("steps"))) {
        settings.steps = static_cast<int>(integerOption(parser, QStringLiteral("steps")));
    }
    if (parser.isSet(QStringLiteral("cfg"))) {
        settings.cfgScale = doubleOption(parser, QStringLiteral("cfg"));
    }
    if (parser.isSet(QStringLiteral("eta"))) {
        settings.eta = doubleOption(parser, QStringLiteral("eta"));
    }
    return settings;
}

// The whole sampler from given start noise and conditioning, then the VAE decoder: the latent
// and the raw decoder output (not clamped), as the reference's ddim_latent and ddim_image.
int probeSample(const QCommandLineParser& parser)
{
    StableDiffusionOptions options;
    options.checkpointPath = parser.value(QStringLiteral("model"));
    if (options.checkpointPath.isEmpty()) {
        failUsage(QStringLiteral("--model is required for this component"));
    }
    options.configPath = parser.value(QStringLiteral("config"));
    options.loadTextEncoder = false; // the conditioning comes from the input file
    const SamplerSettings settings = samplerSettings(parser);
    const std::unique_ptr<StableDiffusion> model = StableDiffusion::load(options);

    std::vector<Hypernetwork> chain;
    if (parser.isSet(QStringLiteral("hypernetwork"))) {
        chain = loadChain(parser);
    }
    for (const Hypernetwork& hypernetwork : chain) {
        model->unet()->runtime().hypernetworks.push_back(&hypernetwork);
    }

    const io::SafeTensorsFile input =
        io::SafeTensorsFile::open(parser.value(QStringLiteral("input")));
    const qint64 seed =
        parser.isSet(QStringLiteral("seed")) ? integerOption(parser, QStringLiteral("seed")) : 0;
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(uint64_t(seed));
    const at::Tensor latent =
        sampleLatents(*model, settings, requireTensor(input, QStringLiteral("x_T")),
                      requireTensor(input, QStringLiteral("context")),
                      requireTensor(input, QStringLiteral("uncond_context")), generator);
    const at::Tensor image = model->decodeLatents(latent);
    io::writeSafeTensors(parser.value(QStringLiteral("output")),
                         {{QStringLiteral("latent"), latent.cpu().contiguous()},
                          {QStringLiteral("image"), image.cpu().contiguous()}});
    return kExitOk;
}

int probe(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "Runs one component on tensors read from a safetensors file and writes its outputs.\n"
        "Components:\n"
        "  hypernetwork  reads every context_<width> tensor and writes k_<width> and v_<width>,\n"
        "                the contexts the attention's to_k and to_v receive.\n"
        "  unet          reads x, timesteps and context and writes out, with the hypernetworks\n"
        "                given by --hypernetwork applied in every attention layer.\n"
        "  vae-encode    reads image (in [-1, 1]) and writes posterior_mean, posterior_logvar.\n"
        "  vae-decode    reads z and writes decoded.\n"
        "  text-encoder  reads input_ids and writes context, the conditioning the UNet gets.\n"
        "  sample        reads x_T (start noise), context and uncond_context and runs the\n"
        "                sampler with classifier-free guidance (and --hypernetwork); writes\n"
        "                latent and image (the VAE decoder's raw output, about [-1, 1])."));
    parser.addHelpOption();
    parser.addOptions({
        {QStringLiteral("hypernetwork"),
         QStringLiteral("A hypernetwork file, optionally with its strength (FILE.pt:0.5). "
                        "Repeat to apply several in sequence, as the webui does."),
         QStringLiteral("FILE.pt[:S]")},
        {QStringLiteral("strength"),
         QStringLiteral("Strength for hypernetworks given without one. Default: 1."),
         QStringLiteral("S")},
        {QStringLiteral("model"),
         QStringLiteral("The Stable Diffusion checkpoint (.safetensors or .ckpt)."),
         QStringLiteral("CKPT")},
        {QStringLiteral("config"),
         QStringLiteral("The ldm YAML config. Default: the .yaml beside the checkpoint, else the "
                        "architecture is detected from the weights."),
         QStringLiteral("YAML")},
        {QStringLiteral("clip-skip"),
         QStringLiteral("SD1 text encoder: use the output of the N-th layer from the end, then "
                        "the final layer norm (webui's CLIP skip). Default: the config's layer."),
         QStringLiteral("N")},
        {QStringLiteral("sampler"), QStringLiteral("sample: ddim (default) or euler_a."),
         QStringLiteral("NAME")},
        {QStringLiteral("steps"), QStringLiteral("sample: sampler steps. Default: 20."),
         QStringLiteral("N")},
        {QStringLiteral("cfg"), QStringLiteral("sample: guidance scale. Default: 7."),
         QStringLiteral("S")},
        {QStringLiteral("eta"),
         QStringLiteral("sample: eta. Default: the sampler's (DDIM 0, Euler a 1)."),
         QStringLiteral("E")},
        {QStringLiteral("seed"),
         QStringLiteral("sample: seed of the generator of fresh noise (Euler a, DDIM with "
                        "eta > 0). Default: 0."),
         QStringLiteral("N")},
        {QStringLiteral("input"), QStringLiteral("The safetensors file with the inputs."),
         QStringLiteral("IN.safetensors")},
        {QStringLiteral("output"), QStringLiteral("The safetensors file to write."),
         QStringLiteral("OUT.safetensors")},
    });
    parser.addPositionalArgument(QStringLiteral("COMPONENT"),
                                 QStringLiteral("The component to run: hypernetwork, unet, "
                                                "vae-encode, vae-decode, text-encoder, sample."));
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }

    const QStringList positional = parser.positionalArguments();
    if (positional.size() != 1) {
        failUsage(QStringLiteral("give exactly one component"));
    }
    for (const char* required : {"input", "output"}) {
        if (!parser.isSet(QString::fromLatin1(required))) {
            failUsage(QStringLiteral("--%1 is required").arg(QString::fromLatin1(required)));
        }
    }
    const QString component = positional.front();
    if (component == QLatin1String("hypernetwork")) {
        return probeHypernetwork(parser);
    }
    if (component == QLatin1String("unet")) {
        return probeUnet(parser);
    }
    if (component == QLatin1String("vae-encode") || component == QLatin1String("vae-decode")) {
        return probeVae(parser, component == QLatin1String("vae-encode"));
    }
    if (component == QLatin1String("text-encoder")) {
        return probeTextEncoder(parser);
    }
    if (component == QLatin1String("sample")) {
        return probeSample(parser);
    }
    failUsage(QStringLiteral("unknown component '%1'; available: hypernetwork, unet, vae-encode, "
                             "vae-decode, text-encoder, sample")
                  .arg(component));
}

} // namespace

int runProbe(const QStringList& arguments)
{
    return runCommand(QStringLiteral("probe"), [&] { return probe(arguments); });
}

} // namespace studio::cli
