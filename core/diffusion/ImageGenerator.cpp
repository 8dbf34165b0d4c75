#include "core/diffusion/ImageGenerator.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/diffusion/ModelConfig.h"
#include "core/diffusion/ModelLoader.h"
#include "core/diffusion/Sampler.h"
#include "core/diffusion/StableDiffusion.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/PngFile.h"
#include "core/io/TensorSource.h"

#include <ATen/ATen.h>

#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QRandomGenerator>

#include <cmath>
#include <limits>
#include <map>

namespace studio {

namespace {

QString pathText(const QString& path)
{
    return QDir::toNativeSeparators(path);
}

// The YAML the model's configuration comes from, or an empty string when it was detected.
QString configPathFor(const QString& checkpoint, const QString& config)
{
    return config.isEmpty() ? ldmConfigPathFor(checkpoint) : config;
}

QVariantMap mapAt(const QVariantMap& root, const QStringList& keys)
{
    QVariantMap map = root;
    for (const QString& key : keys) {
        map = map.value(key).toMap();
    }
    return map;
}

QString predictionText(const ModelConfig& config)
{
    if (!config.vPredictionKnown) {
        return QStringLiteral("eps or v prediction (probed when loaded)");
    }
    return config.vPrediction ? QStringLiteral("v prediction") : QStringLiteral("eps prediction");
}

int64_t resolveSeed(int64_t seed)
{
    if (seed == -1) {
        // As the webui's -1: a fresh seed, recorded in the result and its infotext.
        return static_cast<int64_t>(
            QRandomGenerator::global()->bounded(std::numeric_limits<quint32>::max()));
    }
    if (seed < 0) {
        throw Error(QStringLiteral("seed: %1 is negative; give 0 or more, or -1 for a random seed")
                        .arg(seed));
    }
    return seed;
}

// Sets the UNet's hypernetwork stack for one generation and clears it afterwards, so that a
// failed or cancelled generation never leaves a stack that outlives its hypernetworks.
class StackGuard
{
public:
    StackGuard(UNetRuntime& runtime, const std::vector<const Hypernetwork*>& stack)
        : m_runtime(runtime)
    {
        m_runtime.hypernetworks = stack;
    }
    ~StackGuard() { m_runtime.hypernetworks.clear(); }
    StackGuard(const StackGuard&) = delete;
    StackGuard& operator=(const StackGuard&) = delete;

private:
    UNetRuntime& m_runtime;
};

struct CachedHypernetwork
{
    Hypernetwork hypernetwork;
    QDateTime modified;
    qint64 bytes = 0;
};

} // namespace

int nativeImageSize(const StableDiffusion& model, const QString& checkpoint, const QString& config)
{
    const QString yaml = configPathFor(checkpoint, config);
    if (!yaml.isEmpty()) {
        const QVariantMap params =
            mapAt(readYamlFile(yaml).toMap(), {QStringLiteral("model"), QStringLiteral("params")});
        QVariant latent = mapAt(params, {QStringLiteral("unet_config"), QStringLiteral("params")})
                              .value(QStringLiteral("image_size"));
        if (!latent.isValid()) {
            latent = params.value(QStringLiteral("image_size"));
        }
        if (latent.toInt() > 0) {
            return latent.toInt() * model.latentDownsampling();
        }
    }
    const bool sd2v = model.config().family == ModelFamily::Sd2 && model.config().vPrediction;
    return sd2v ? 768 : 512;
}

struct ImageGenerator::Impl
{
    GeneratorModelOptions options;
    std::unique_ptr<StableDiffusion> model;
    int nativeSize = 512;
    // Loaded once per file (absolute path); reloaded when the file changed on disk, as a merge
    // previewed, changed and previewed again does.
    std::map<QString, CachedHypernetwork> cache;
    std::atomic<bool> cancelled{false};

    const Hypernetwork& hypernetwork(const QString& path);
    std::vector<Hypernetwork> stack(const std::vector<StackEntry>& entries);
    GenerationRequest engineRequest(const ImageRequest& request) const;
};

const Hypernetwork& ImageGenerator::Impl::hypernetwork(const QString& path)
{
    const QFileInfo info(path);
    if (!info.isFile()) {
        throw Error(QStringLiteral("hypernetwork '%1' is not a file; choose a .pt file")
                        .arg(pathText(path)));
    }
    const QString key = info.absoluteFilePath();
    const auto found = cache.find(key);
    if (found != cache.end() && found->second.modified == info.lastModified() &&
        found->second.bytes == info.size()) {
        return found->second.hypernetwork;
    }
    Hypernetwork loaded = loadHypernetwork(path);
    loaded.train(false);
    loaded.to(model->device());
    const auto [item, inserted] = cache.insert_or_assign(
        key, CachedHypernetwork{std::move(loaded), info.lastModified(), info.size()});
    qCDebug(lcHypernetwork) << (inserted ? "loaded" : "reloaded") << path << "for generation";
    return item->second.hypernetwork;
}

std::vector<Hypernetwork> ImageGenerator::Impl::stack(const std::vector<StackEntry>& entries)
{
    // Copies share the cached modules; each carries its own strength, so one file may appear
    // in a stack twice at different strengths.
    std::vector<Hypernetwork> result;
    for (const StackEntry& entry : entries) {
        if (!std::isfinite(entry.strength)) {
            throw Error(QStringLiteral("hypernetwork '%1': the strength should be a finite "
                                       "number, like 0.5")
                            .arg(pathText(entry.path)));
        }
        Hypernetwork copy = hypernetwork(entry.path);
        copy.setStrength(entry.strength);
        result.push_back(copy);
    }
    return result;
}

GenerationRequest ImageGenerator::Impl::engineRequest(const ImageRequest& request) const
{
    GenerationRequest engine;
    engine.prompt = request.prompt;
    engine.negativePrompt = request.negativePrompt;
    engine.seed = resolveSeed(request.seed);
    engine.sampler.kind = parseSamplerKind(request.sampler);
    engine.sampler.steps = request.steps;
    engine.sampler.cfgScale = request.cfgScale;
    engine.width = request.width == 0 ? nativeSize : request.width;
    engine.height = request.height == 0 ? nativeSize : request.height;
    engine.batchSize = 1;
    return engine;
}

ImageGenerator::ImageGenerator(const GeneratorModelOptions& options)
    : m_impl(std::make_unique<Impl>())
{
    if (!QFileInfo(options.checkpoint).isFile()) {
        throw Error(QStringLiteral("model '%1' is not a file; choose a .safetensors or .ckpt "
                                   "checkpoint")
                        .arg(pathText(options.checkpoint)));
    }
    StableDiffusionOptions model;
    model.checkpointPath = options.checkpoint;
    model.configPath = options.config;
    model.tokenizerPath = options.tokenizer;
    model.device = parseDevice(options.device);
    model.dtype = parsePrecision(options.precision);
    model.clipSkip = options.clipSkip;
    m_impl->options = options;
    m_impl->model = StableDiffusion::load(model);
    m_impl->nativeSize = nativeImageSize(*m_impl->model, options.checkpoint, options.config);
}

ImageGenerator::~ImageGenerator() = default;

QString ImageGenerator::modelDescription() const
{
    const ModelConfig& config = m_impl->model->config();
    return QStringLiteral("%1 (%2), %3x%3 native, from %4")
        .arg(familyName(config.family),
             config.vPrediction ? QStringLiteral("v") : QStringLiteral("eps"))
        .arg(m_impl->nativeSize)
        .arg(QFileInfo(m_impl->options.checkpoint).fileName());
}

GeneratedImage ImageGenerator::generate(const ImageRequest& request)
{
    m_impl->cancelled = false;
    const GenerationRequest engine = m_impl->engineRequest(request);
    const std::vector<Hypernetwork> stack = m_impl->stack(request.hypernetworks);
    std::vector<const Hypernetwork*> applied;
    for (const Hypernetwork& hypernetwork : stack) {
        applied.push_back(&hypernetwork);
    }

    StableDiffusion& model = *m_impl->model;
    const StackGuard guard(model.unet()->runtime(), applied);
    const SamplerProgress progress = [this](int, int) { return !m_impl->cancelled.load(); };
    GeneratedImages images;
    try {
        images = generateImages(model, engine, applied, progress);
    } catch (const Error&) {
        if (m_impl->cancelled) {
            throw Error(QStringLiteral("generation cancelled"));
        }
        throw;
    }

    const at::Tensor pixels = images.pixels[0].contiguous();
    GeneratedImage result;
    result.height = static_cast<int>(pixels.size(0));
    result.width = static_cast<int>(pixels.size(1));
    result.rgb = QByteArray(reinterpret_cast<const char*>(pixels.data_ptr<uint8_t>()),
                            static_cast<qsizetype>(pixels.numel()));
    result.parameters = images.infotexts.front();
    result.seed = engine.seed;
    return result;
}

void ImageGenerator::cancel()
{
    m_impl->cancelled = true;
}

QString describeCheckpoint(const QString& checkpoint, const QString& config)
{
    if (!QFileInfo(checkpoint).isFile()) {
        throw Error(QStringLiteral("model '%1' is not a file; choose a .safetensors or .ckpt "
                                   "checkpoint")
                        .arg(pathText(checkpoint)));
    }
    // Only the tensor names and shapes are read (a safetensors file is mapped, not loaded).
    const auto source = io::openTensorSource(checkpoint);
    const ModelConfig model = resolveModelConfig(checkpoint, config, *source);
    const QString yaml = configPathFor(checkpoint, config);
    QString text = QStringLiteral("%1.x, %2, %3-channel UNet with context %4; configuration %5")
                       .arg(familyName(model.family), predictionText(model))
                       .arg(model.unet.inChannels)
                       .arg(model.unet.contextDim)
                       .arg(yaml.isEmpty() ? QStringLiteral("detected from the weights")
                                           : QStringLiteral("from ") + QFileInfo(yaml).fileName());
    if (!model.notes.isEmpty()) {
        text += QStringLiteral(" (%1 values assumed; hnstudio info lists them)")
                    .arg(model.notes.size());
    }
    return text;
}

void saveGeneratedImage(const GeneratedImage& image, const QString& path)
{
    const qsizetype expected = qsizetype(image.width) * image.height * 3;
    if (image.width <= 0 || image.height <= 0 || image.rgb.size() != expected) {
        throw Error(QStringLiteral("'%1': the image is %2x%3 with %4 bytes of RGB; it needs "
                                   "width x height x 3 = %5")
                        .arg(pathText(path))
                        .arg(image.width)
                        .arg(image.height)
                        .arg(image.rgb.size())
                        .arg(expected));
    }
    QByteArray bytes = image.rgb; // from_blob needs writable memory; this detaches a copy
    const at::Tensor pixels =
        at::from_blob(bytes.data(), {image.height, image.width, 3}, at::kByte);
    io::writePng(path, pixels, {{QStringLiteral("parameters"), image.parameters}});
}

} // namespace studio
