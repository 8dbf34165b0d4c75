#include "core/demo/DemoModelTrainer.h"

#include "core/Error.h"
#include "core/demo/ShapeScenes.h"
#include "core/diffusion/NoiseSchedule.h"
#include "core/diffusion/UNet.h"
#include "core/diffusion/Vae.h"
#include "core/io/AtomicFile.h"
#include "core/io/SafeTensors.h"
#include "core/text/BpeVocabularyBuilder.h"
#include "core/text/ClipTextEncoder.h"
#include "core/text/ClipTokenizer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>

#include <QDir>
#include <QFileInfo>
#include <QTemporaryDir>

#include <cmath>
#include <numeric>

namespace studio::demo {

namespace {

constexpr int kTimesteps = 1000;
constexpr double kLinearStart = 0.00085;
constexpr double kLinearEnd = 0.012;
constexpr double kKlWeight = 1e-4;
constexpr uint64_t kUNetSceneOffset = uint64_t(1) << 40; // stage 2 draws other scenes
constexpr int kScaleBatches = 8;
constexpr double kPi = 3.14159265358979323846; // M_PI is not standard C++

using NamedTensors = std::vector<std::pair<QString, at::Tensor>>;

VaeConfig demoVaeConfig(int size)
{
    VaeConfig config;
    config.ch = 32;
    config.chMult = {1, 2, 2}; // f = 4
    config.numResBlocks = 1;
    config.resolution = size;
    config.attnResolutions = {};
    return config;
}

UNetConfig demoUNetConfig()
{
    UNetConfig config;
    config.modelChannels = 64;
    config.channelMult = {1, 2, 2};
    config.numResBlocks = 1;
    config.attentionResolutions = {2, 4};
    config.numHeads = 4;
    config.numHeadChannels = -1;
    config.legacy = false;
    config.transformerDepth = 1;
    config.contextDim = 64;
    return config;
}

ClipTextConfig demoTextConfig(int vocabSize)
{
    ClipTextConfig config;
    config.width = 64;
    config.layers = 2;
    config.heads = 4;
    config.vocabSize = vocabSize;
    return config;
}

QString intList(const std::vector<int>& values)
{
    QStringList parts;
    for (int value : values) {
        parts << QString::number(value);
    }
    return QLatin1Char('[') + parts.join(QStringLiteral(", ")) + QLatin1Char(']');
}

QString ldmYaml(const VaeConfig& vae, const UNetConfig& unet, const ClipTextConfig& text,
                double scaleFactor, int latentSize)
{
    QString yaml;
    yaml += QStringLiteral(
        "# The built-in demo base model (hnstudio demo-model): SD1 architecture, tiny.\n"
        "model:\n"
        "  target: ldm.models.diffusion.ddpm.LatentDiffusion\n"
        "  params:\n");
    yaml += QStringLiteral("    linear_start: %1\n").arg(kLinearStart);
    yaml += QStringLiteral("    linear_end: %1\n").arg(kLinearEnd);
    yaml += QStringLiteral("    num_timesteps_cond: 1\n    timesteps: %1\n").arg(kTimesteps);
    yaml += QStringLiteral("    first_stage_key: \"jpg\"\n    cond_stage_key: \"txt\"\n");
    yaml += QStringLiteral("    image_size: %1\n    channels: %2\n")
                .arg(latentSize)
                .arg(unet.inChannels);
    yaml += QStringLiteral("    cond_stage_trainable: false\n    conditioning_key: crossattn\n");
    yaml += QStringLiteral("    scale_factor: %1\n").arg(QString::number(scaleFactor, 'g', 8));
    yaml += QStringLiteral("    use_ema: False\n    parameterization: \"eps\"\n");
    yaml += QStringLiteral("    unet_config:\n"
                           "      target: ldm.modules.diffusionmodules.openaimodel.UNetModel\n"
                           "      params:\n");
    yaml += QStringLiteral("        image_size: %1\n").arg(latentSize);
    yaml += QStringLiteral("        in_channels: %1\n        out_channels: %2\n")
                .arg(unet.inChannels)
                .arg(unet.outChannels);
    yaml += QStringLiteral("        model_channels: %1\n").arg(unet.modelChannels);
    yaml += QStringLiteral("        attention_resolutions: %1\n")
                .arg(intList(unet.attentionResolutions));
    yaml += QStringLiteral("        num_res_blocks: %1\n").arg(unet.numResBlocks);
    yaml += QStringLiteral("        channel_mult: %1\n").arg(intList(unet.channelMult));
    yaml += QStringLiteral("        num_heads: %1\n").arg(unet.numHeads);
    yaml += QStringLiteral("        use_spatial_transformer: True\n");
    yaml += QStringLiteral("        transformer_depth: %1\n").arg(unet.transformerDepth);
    yaml += QStringLiteral("        context_dim: %1\n").arg(unet.contextDim);
    yaml += QStringLiteral("        use_checkpoint: False\n        legacy: %1\n")
                .arg(unet.legacy ? QStringLiteral("True") : QStringLiteral("False"));
    yaml += QStringLiteral("    first_stage_config:\n"
                           "      target: ldm.models.autoencoder.AutoencoderKL\n"
                           "      params:\n");
    yaml += QStringLiteral("        embed_dim: %1\n        ddconfig:\n").arg(vae.embedDim);
    yaml +=
        QStringLiteral("          double_z: true\n          z_channels: %1\n").arg(vae.zChannels);
    yaml += QStringLiteral("          resolution: %1\n").arg(vae.resolution);
    yaml += QStringLiteral("          in_channels: %1\n          out_ch: %2\n")
                .arg(vae.inChannels)
                .arg(vae.outChannels);
    yaml += QStringLiteral("          ch: %1\n          ch_mult: %2\n")
                .arg(vae.ch)
                .arg(intList(vae.chMult));
    yaml += QStringLiteral("          num_res_blocks: %1\n          attn_resolutions: []\n")
                .arg(vae.numResBlocks);
    yaml += QStringLiteral("          dropout: 0.0\n        lossconfig:\n"
                           "          target: torch.nn.Identity\n");
    yaml += QStringLiteral("    cond_stage_config:\n"
                           "      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder\n"
                           "      params:\n        layer: \"last\"\n");
    yaml += QStringLiteral("        heads: %1\n").arg(text.heads);
    return yaml;
}

void appendF16(const torch::nn::Module& module, const QString& prefix, NamedTensors& out)
{
    for (const auto& item : module.named_parameters(true)) {
        out.emplace_back(prefix + QString::fromStdString(item.key()),
                         item.value().detach().to(at::kHalf).contiguous());
    }
    for (const auto& item : module.named_buffers(true)) {
        const at::Tensor& value = item.value();
        out.emplace_back(prefix + QString::fromStdString(item.key()),
                         value.is_floating_point() ? value.detach().to(at::kHalf).contiguous()
                                                   : value.detach().contiguous());
    }
}

// A batch of plain scenes as [B, 3, size, size] in [-1, 1], with their captions.
at::Tensor sceneBatch(uint64_t seed, uint64_t firstIndex, int count, int size,
                      QStringList* captions)
{
    std::vector<at::Tensor> images;
    images.reserve(size_t(count));
    for (int i = 0; i < count; ++i) {
        const ShapeScene scene = randomScene(seed, firstIndex + uint64_t(i));
        images.push_back(renderScene(scene, SceneStyle::Plain, size));
        if (captions != nullptr) {
            *captions << sceneCaption(scene);
        }
    }
    return at::stack(images).permute({0, 3, 1, 2}).to(at::kFloat).div(127.5).sub(1.0);
}

void validate(const DemoModelOptions& options)
{
    if (options.vaeSteps < 1 || options.unetSteps < 1) {
        throw Error(QStringLiteral("demo model: the step counts must be at least 1 (vae %1, "
                                   "unet %2); give --steps 1 or more")
                        .arg(options.vaeSteps)
                        .arg(options.unetSteps));
    }
    if (options.size < 16 || options.size > 512 || options.size % 16 != 0) {
        throw Error(QStringLiteral("demo model: size %1 is not a multiple of 16 from 16 to 512; "
                                   "give --size 64")
                        .arg(options.size));
    }
    const int crop = options.vaeCropSize;
    if (crop != 0 && (crop < 8 || crop > options.size || crop % 8 != 0)) {
        throw Error(QStringLiteral("demo model: VAE crop %1 is not a multiple of 8 from 8 to the "
                                   "picture size %2; give --vae-crop 0 for half the size")
                        .arg(crop)
                        .arg(options.size));
    }
    if (options.batchSize < 1 || options.logEvery < 1) {
        throw Error(QStringLiteral("demo model: batch size and log interval must be at least 1"));
    }
    if (options.captionDropout < 0.0 || options.captionDropout > 1.0) {
        throw Error(QStringLiteral("demo model: caption dropout %1 is outside [0, 1]")
                        .arg(options.captionDropout));
    }
}

void logLine(const DemoModelOptions& options, const char* stage, int step, int steps,
             const std::vector<double>& losses)
{
    if (!options.log || (step % options.logEvery != 0 && step != steps)) {
        return;
    }
    const size_t window = std::min<size_t>(size_t(options.logEvery), losses.size());
    options.log(QStringLiteral("%1 step %2/%3 loss %4")
                    .arg(QLatin1String(stage))
                    .arg(step)
                    .arg(steps)
                    .arg(meanLoss(losses, window, true), 0, 'f', 5));
}

// The same random square window of every picture in `images` ([B, 3, H, W]).
at::Tensor randomWindow(const at::Tensor& images, int side, at::Generator& generator)
{
    const int64_t height = images.size(2);
    const int64_t width = images.size(3);
    if (side >= height && side >= width) {
        return images;
    }
    const int64_t top = at::randint(height - side + 1, {1}, generator, at::kLong).item<int64_t>();
    const int64_t left = at::randint(width - side + 1, {1}, generator, at::kLong).item<int64_t>();
    return images.narrow(2, top, side).narrow(3, left, side).contiguous();
}

// Half a cosine from `base` down to a tenth of it over `steps`.
double decayedLearningRate(double base, int step, int steps)
{
    const double progress = steps > 1 ? double(step - 1) / double(steps - 1) : 1.0;
    return base * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(kPi * progress)));
}

struct DemoModules
{
    AutoencoderKL vae;
    UNetModel unet;
    ClipTextEncoder text;
};

// Stage 1: the VAE as an autoencoder on random windows; frozen afterwards.
std::vector<double> trainVae(AutoencoderKLImpl& vae, const DemoModelOptions& options,
                             at::Generator& generator)
{
    torch::optim::Adam optimizer(vae.parameters(),
                                 torch::optim::AdamOptions(options.vaeLearningRate));
    vae.train();
    const int batch = options.batchSize;
    const int crop = options.vaeCropSize > 0 ? options.vaeCropSize : options.size / 2;
    std::vector<double> losses;
    for (int step = 1; step <= options.vaeSteps; ++step) {
        const at::Tensor pictures = sceneBatch(options.seed, uint64_t(step - 1) * uint64_t(batch),
                                               batch, options.size, nullptr);
        const at::Tensor images = randomWindow(pictures, crop, generator);

        const VaePosterior posterior = vae.encode(images);
        const at::Tensor reconstruction = vae.decode(posterior.sample(generator));
        const at::Tensor kl =
            0.5 * (posterior.mean.pow(2) + posterior.logvar.exp() - 1.0 - posterior.logvar).mean();
        const at::Tensor loss = (reconstruction - images).pow(2).mean() + kKlWeight * kl;

        optimizer.zero_grad();
        loss.backward();
        torch::nn::utils::clip_grad_norm_(vae.parameters(), 1.0);
        optimizer.step();
        losses.push_back(loss.item<double>());
        logLine(options, "vae", step, options.vaeSteps, losses);
    }

    vae.eval();
    for (at::Tensor& parameter : vae.parameters()) {
        parameter.requires_grad_(false);
    }
    return losses;
}

// The latent scale: 1 / std of posterior samples (ldm's scale_by_std), rounded as demo.yaml
// writes it, so that the UNet trains with the value the loader will read.
double measureScaleFactor(AutoencoderKLImpl& vae, const DemoModelOptions& options,
                          at::Generator& generator)
{
    torch::NoGradGuard noGrad;
    const int batch = options.batchSize;
    std::vector<at::Tensor> samples;
    for (int i = 0; i < kScaleBatches; ++i) {
        const at::Tensor images = sceneBatch(
            options.seed ^ 0x5ca1eULL, uint64_t(i) * uint64_t(batch), batch, options.size, nullptr);
        samples.push_back(vae.encode(images).sample(generator));
    }

    const double deviation = at::cat(samples).std().item<double>();
    const double scale =
        QString::number(deviation > 1e-6 ? 1.0 / deviation : 1.0, 'g', 8).toDouble();
    if (options.log) {
        options.log(QStringLiteral("latent std %1, scale_factor %2")
                        .arg(deviation, 0, 'g', 6)
                        .arg(scale, 0, 'g', 6));
    }
    return scale;
}

// The token ids of `captions`, [B, 77]; each caption dropped to "" with probability
// `dropout`, so that the UNet also learns the unconditional prediction CFG needs.
at::Tensor captionTokens(const QStringList& captions, const ClipTokenizer& tokenizer,
                         double dropout, at::Generator& generator)
{
    const int64_t batch = captions.size();
    const at::Tensor drop = at::rand({batch}, generator, at::kDouble);
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < batch; ++i) {
        const bool dropped = drop[i].item<double>() < dropout;
        for (int id : tokenizer.tokenize77(dropped ? QString() : captions[int(i)])) {
            ids.push_back(id);
        }
    }
    return at::tensor(ids, at::kLong).view({batch, int64_t(ids.size()) / batch});
}

// Stage 2: UNet eps-prediction with the text encoder trained jointly.
std::vector<double> trainUNet(DemoModules& modules, const ClipTokenizer& tokenizer,
                              double scaleFactor, const DemoModelOptions& options,
                              at::Generator& generator)
{
    const NoiseSchedule schedule = NoiseSchedule::linear(kTimesteps, kLinearStart, kLinearEnd);
    std::vector<at::Tensor> parameters = modules.unet->parameters();
    for (const at::Tensor& parameter : modules.text->parameters()) {
        parameters.push_back(parameter);
    }
    torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(options.unetLearningRate));
    modules.unet->train();
    modules.text->train();
    const int batch = options.batchSize;
    std::vector<double> losses;

    for (int step = 1; step <= options.unetSteps; ++step) {
        const double rate = decayedLearningRate(options.unetLearningRate, step, options.unetSteps);
        for (auto& group : optimizer.param_groups()) {
            static_cast<torch::optim::AdamOptions&>(group.options()).lr(rate);
        }

        QStringList captions;
        const at::Tensor images =
            sceneBatch(options.seed, kUNetSceneOffset + uint64_t(step - 1) * uint64_t(batch), batch,
                       options.size, &captions);
        at::Tensor latents;
        {
            torch::NoGradGuard noGrad;
            latents = modules.vae->encode(images).sample(generator) * scaleFactor;
        }
        const at::Tensor context = modules.text->forward(
            captionTokens(captions, tokenizer, options.captionDropout, generator));

        const at::Tensor t = at::randint(kTimesteps, {batch}, generator, at::kLong);
        const at::Tensor noise = at::randn(latents.sizes(), generator, at::kFloat);
        const at::Tensor a = schedule.sqrtAlphasCumprod().index_select(0, t).view({-1, 1, 1, 1});
        const at::Tensor s =
            schedule.sqrtOneMinusAlphasCumprod().index_select(0, t).view({-1, 1, 1, 1});
        const at::Tensor prediction =
            modules.unet->forward(a * latents + s * noise, t.to(at::kFloat), context);
        const at::Tensor loss = (prediction - noise).pow(2).mean();

        optimizer.zero_grad();
        loss.backward();
        torch::nn::utils::clip_grad_norm_(parameters, 1.0);
        optimizer.step();
        losses.push_back(loss.item<double>());
        logLine(options, "unet", step, options.unetSteps, losses);
    }

    modules.unet->eval();
    modules.text->eval();
    return losses;
}

// demo.safetensors (F16, ldm key names) and demo.yaml, each written atomically.
void writeDemoModel(const DemoModules& modules, DemoModelResult& result, const QString& outDir,
                    const DemoModelOptions& options)
{
    NamedTensors tensors;
    appendF16(*modules.unet, QStringLiteral("model.diffusion_model."), tensors);
    appendF16(*modules.vae, QLatin1String(kVaeCheckpointPrefix), tensors);
    appendF16(*modules.text, QLatin1String(kSd1TextPrefix), tensors);

    const QDir dir(outDir);
    result.checkpointPath = dir.filePath(QStringLiteral("demo.safetensors"));
    result.yamlPath = dir.filePath(QStringLiteral("demo.yaml"));
    io::writeSafeTensors(result.checkpointPath, tensors,
                         {{QStringLiteral("format"), QStringLiteral("pt")},
                          {QStringLiteral("hnstudio.demo_seed"), QString::number(options.seed)}});
    const VaeConfig& vaeConfig = modules.vae->config();
    const QString yaml = ldmYaml(vaeConfig, modules.unet->config(), modules.text->config(),
                                 result.scaleFactor, options.size / vaeConfig.downsamplingFactor());
    io::writeFileAtomically(result.yamlPath, yaml.toUtf8());
    result.checkpointBytes = QFileInfo(result.checkpointPath).size();
}

} // namespace

double meanLoss(const std::vector<double>& losses, size_t window, bool last)
{
    window = std::min(window, losses.size());
    if (window == 0) {
        return 0.0;
    }
    const auto begin = last ? losses.end() - std::ptrdiff_t(window) : losses.begin();
    return std::accumulate(begin, begin + std::ptrdiff_t(window), 0.0) / double(window);
}

DemoModelResult trainDemoModel(const QString& outDir, const DemoModelOptions& options)
{
    validate(options);
    if (!QDir().mkpath(outDir)) {
        throw Error(QStringLiteral("cannot create the folder '%1'; check that its parent exists "
                                   "and is writable")
                        .arg(QDir::toNativeSeparators(outDir)));
    }

    // The vocabulary reaches OUT_DIR only with the model it belongs to, at the end: an
    // interrupted run leaves the folder as it was.
    const BpeVocabulary vocabulary = learnBpeVocabulary(allSceneCaptions());
    const QTemporaryDir vocabularyDir;
    if (!vocabularyDir.isValid()) {
        throw Error(QStringLiteral("cannot create a temporary folder for the vocabulary: %1")
                        .arg(vocabularyDir.errorString()));
    }
    writeBpeVocabulary(vocabulary, vocabularyDir.path());
    const ClipTokenizer tokenizer(ClipTokenizer::locate(QString(), vocabularyDir.path()));

    // Module initialisation draws from the global generator, in this order.
    at::manual_seed(options.seed);
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
    DemoModules modules{AutoencoderKL(demoVaeConfig(options.size)), UNetModel(demoUNetConfig()),
                        ClipTextEncoder(demoTextConfig(int(vocabulary.tokens.size())))};

    DemoModelResult result;
    result.vaeLosses = trainVae(*modules.vae, options, generator);
    result.scaleFactor = measureScaleFactor(*modules.vae, options, generator);
    result.unetLosses = trainUNet(modules, tokenizer, result.scaleFactor, options, generator);

    writeDemoModel(modules, result, outDir, options);
    writeBpeVocabulary(vocabulary, outDir);
    return result;
}

} // namespace studio::demo
