#include "core/diffusion/StableDiffusion.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/diffusion/ModelLoader.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/TensorSource.h"
#include "core/text/ClipTextEncoder.h"
#include "core/text/ClipTokenizer.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <QDir>
#include <QFileInfo>
#include <QRegularExpression>

namespace studio {

namespace {

ClipTextConfig textConfigFor(const ModelConfig& config, const DetectedClipText& detected,
                             int clipSkip)
{
    ClipTextConfig text = detected.config;
    if (config.textParams.value(QStringLiteral("layer")).toString() ==
        QLatin1String("penultimate")) {
        text.clipSkip = 2;
    }
    if (clipSkip > 0) {
        if (text.layout != ClipTextLayout::Sd1HuggingFace && clipSkip != text.clipSkip) {
            throw Error(QStringLiteral("clip skip: SD2 models always use the penultimate layer; "
                                       "leave clip skip at 0"));
        }
        text.clipSkip = clipSkip;
    }
    return text;
}

PromptEncoder loadPromptEncoder(const io::TensorSource& source, const ModelConfig& config,
                                const StableDiffusionOptions& options)
{
    const QVariant heads = config.textParams.value(QStringLiteral("heads"));
    const DetectedClipText detected = detectClipTextEncoder(
        source, heads.isValid() ? std::optional<int>(heads.toInt()) : std::nullopt);
    ClipTextEncoder encoder = loadClipTextEncoder(
        source, textConfigFor(config, detected, options.clipSkip), detected.prefix);
    encoder->to(options.device);

    ClipTokenizer tokenizer(ClipTokenizer::locate(options.checkpointPath, options.tokenizerPath));
    return PromptEncoder(std::move(tokenizer), std::move(encoder));
}

} // namespace

std::unique_ptr<StableDiffusion> StableDiffusion::load(const StableDiffusionOptions& options)
{
    if (options.dtype == at::kHalf && !options.device.is_cuda()) {
        throw Error(QStringLiteral("precision: fp16 weights need a CUDA device; use fp32 or bf16 "
                                   "on the CPU"));
    }
    std::unique_ptr<StableDiffusion> model(new StableDiffusion);
    model->m_options = options;

    const auto source = io::openTensorSource(options.checkpointPath);
    model->m_config = resolveModelConfig(options.checkpointPath, options.configPath, *source);
    model->m_schedule = NoiseSchedule::linear(
        model->m_config.timesteps, model->m_config.linearStart, model->m_config.linearEnd);

    model->m_unet = loadUNet(*source, model->m_config);
    model->m_unet->to(options.device, options.dtype);

    if (options.loadVae) {
        model->m_vae = loadVae(*source, findVaePrefix(*source), model->m_config.scaleFactor);
        model->m_vae->to(options.device);
        for (at::Tensor& parameter : model->m_vae->parameters()) {
            parameter.requires_grad_(false);
        }
        model->m_vae->eval();
    }
    if (options.loadTextEncoder) {
        model->m_promptEncoder.emplace(loadPromptEncoder(*source, model->m_config, options));
    }
    qCInfo(lcIo) << "loaded" << options.checkpointPath << "on" << options.device.str().c_str();
    return model;
}

Parameterization StableDiffusion::parameterization() const
{
    return m_config.vPrediction ? Parameterization::V : Parameterization::Eps;
}

AutoencoderKL& StableDiffusion::vae()
{
    if (!m_vae) {
        throw Error(QStringLiteral("the VAE of '%1' was not loaded")
                        .arg(QDir::toNativeSeparators(m_options.checkpointPath)));
    }
    return m_vae;
}

const PromptEncoder& StableDiffusion::promptEncoder() const
{
    if (!m_promptEncoder) {
        throw Error(QStringLiteral("the text encoder of '%1' was not loaded")
                        .arg(QDir::toNativeSeparators(m_options.checkpointPath)));
    }
    return *m_promptEncoder;
}

at::Tensor StableDiffusion::encodePrompts(const QStringList& prompts) const
{
    return promptEncoder().encode(prompts).to(m_options.device);
}

at::Tensor StableDiffusion::denoise(const at::Tensor& x, const at::Tensor& timesteps,
                                    const at::Tensor& context)
{
    const at::Tensor out =
        m_unet->forward(x.to(m_options.dtype), timesteps, context.to(m_options.dtype));
    return out.to(at::kFloat);
}

VaePosterior StableDiffusion::encodeImages(const at::Tensor& images)
{
    torch::NoGradGuard noGrad;
    return vae()->encode(images.to(m_options.device));
}

at::Tensor StableDiffusion::decodeLatents(const at::Tensor& latents)
{
    torch::NoGradGuard noGrad;
    return vae()->decodeLatent(latents.to(m_options.device));
}

int StableDiffusion::latentDownsampling() const
{
    return m_vae ? m_vae->config().downsamplingFactor() : 8;
}

QString StableDiffusion::checkpointName() const
{
    return QFileInfo(m_options.checkpointPath).completeBaseName();
}

QString StableDiffusion::checkpointShortHash() const
{
    if (m_shortHash.isEmpty()) {
        m_shortHash = fileShortHash(m_options.checkpointPath);
    }
    return m_shortHash;
}

c10::Device parseDevice(const QString& text)
{
    static const QRegularExpression pattern(QStringLiteral("^(cpu|cuda)(?::(\\d+))?$"));
    const QRegularExpressionMatch match = pattern.match(text.trimmed().toLower());
    if (!match.hasMatch() ||
        (match.captured(1) == QLatin1String("cpu") && !match.captured(2).isEmpty())) {
        throw Error(QStringLiteral("device '%1' is not one of cpu, cuda, cuda:N").arg(text));
    }
    if (match.captured(1) == QLatin1String("cpu")) {
        return c10::kCPU;
    }
    const int index = match.captured(2).isEmpty() ? 0 : match.captured(2).toInt();
    const int available = static_cast<int>(torch::cuda::device_count());
    if (index >= available) {
        throw Error(
            QStringLiteral("device '%1': this machine has %2 CUDA device(s)%3; use cpu")
                .arg(text)
                .arg(available)
                .arg(available == 0 ? QStringLiteral(" (or this build has no CUDA)") : QString()));
    }
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

at::ScalarType parsePrecision(const QString& text)
{
    const QString name = text.trimmed().toLower();
    if (name == QLatin1String("fp32")) {
        return at::kFloat;
    }
    if (name == QLatin1String("fp16")) {
        return at::kHalf;
    }
    if (name == QLatin1String("bf16")) {
        return at::kBFloat16;
    }
    throw Error(QStringLiteral("precision '%1' is not one of fp32, fp16, bf16").arg(text));
}

} // namespace studio
