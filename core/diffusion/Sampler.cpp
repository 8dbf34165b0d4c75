#include "core/diffusion/Sampler.h"

#include "core/Error.h"
#include "core/diffusion/StableDiffusion.h"
#include "core/hypernetwork/Hypernetwork.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <QStringList>

#include <algorithm>
#include <cmath>

namespace studio {

namespace {

// Fresh unit-variance noise shaped like its argument (ancestral steps, DDIM with eta > 0).
using NoiseSource = std::function<at::Tensor(const at::Tensor& like)>;

// The model's prediction for a batch at per-row "levels" (DDIM: integer timesteps, Euler a:
// sigmas) under one conditioning.
using Denoiser = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& level,
                                          const at::Tensor& context)>;

struct Guidance
{
    at::Tensor cond;
    at::Tensor uncond; // batch expanded to cond's
    double scale = 1.0;
    bool uncondFirst = true; // ldm DDIM batches [uncond, cond]; the webui [cond, uncond]
};

at::Tensor drawNoise(at::Generator& generator, at::IntArrayRef sizes)
{
    return at::randn(sizes, generator,
                     at::TensorOptions().dtype(at::kFloat).device(generator.device()));
}

// ldm and k-diffusion hold per-row coefficients as [B, 1, 1, 1] tensors on the device; using
// the same shape keeps every operation (and its rounding) the same as theirs.
at::Tensor rowScalar(float value, const at::Tensor& like)
{
    return at::full({like.size(0), 1, 1, 1}, value, like.options());
}

at::Tensor scalarLike(float value, const at::Tensor& like)
{
    return at::full({}, value, like.options());
}

// Classifier-free guidance: uncond + scale * (cond - uncond). At scale 1 only the conditional
// pass runs, as in ldm's DDIMSampler.
at::Tensor guided(const Denoiser& denoiser, const Guidance& guidance, const at::Tensor& x,
                  const at::Tensor& level)
{
    if (guidance.scale == 1.0) {
        return denoiser(x, level, guidance.cond);
    }
    at::Tensor condOut;
    at::Tensor uncondOut;
    if (guidance.cond.size(1) == guidance.uncond.size(1)) {
        const bool uncondFirst = guidance.uncondFirst;
        const at::Tensor context = uncondFirst ? at::cat({guidance.uncond, guidance.cond})
                                               : at::cat({guidance.cond, guidance.uncond});
        const std::vector<at::Tensor> halves =
            denoiser(at::cat({x, x}), at::cat({level, level}), context).chunk(2);
        uncondOut = halves[uncondFirst ? 0 : 1];
        condOut = halves[uncondFirst ? 1 : 0];
    } else {
        // Conditionings of different lengths cannot share a batch; the webui (without its
        // pad_cond_uncond option) runs them as separate UNet calls, which is what this does.
        condOut = denoiser(x, level, guidance.cond);
        uncondOut = denoiser(x, level, guidance.uncond);
    }
    return uncondOut + (condOut - uncondOut) * guidance.scale;
}

void reportStep(const SamplerProgress& progress, int done, int total)
{
    if (progress && !progress(done, total)) {
        throw Error(QStringLiteral("cancelled"));
    }
}

// ldm DDIMSampler.sample with the "uniform" discretisation (spec 5.4).
at::Tensor sampleDdim(StableDiffusion& model, const SamplerSettings& settings, at::Tensor x,
                      const Guidance& guidance, const NoiseSource& noise,
                      const SamplerProgress& progress)
{
    const NoiseSchedule& schedule = model.schedule();
    const std::vector<int64_t> timesteps = ddimTimesteps(settings.steps, schedule.timesteps());
    const at::Tensor alphas = schedule.alphasCumprod().contiguous();
    const float* acp = alphas.data_ptr<float>();
    const double eta = settings.eta < 0 ? 0.0 : settings.eta;
    const Parameterization parameterization = model.parameterization();

    const Denoiser unet = [&model](const at::Tensor& input, const at::Tensor& t,
                                   const at::Tensor& context) {
        return model.denoise(input, t, context);
    };

    const int total = static_cast<int>(timesteps.size());
    for (int step = 0; step < total; ++step) {
        const size_t k = static_cast<size_t>(total - 1 - step);
        const int64_t t = timesteps[k];
        // make_ddim_sampling_parameters: float32 buffer values, the last step ends at acp[0].
        const float aT = acp[t];
        const float aPrev = k > 0 ? acp[timesteps[k - 1]] : acp[0];
        const float oneMinusAT = 1.0f - aT;
        const auto sigma = static_cast<float>(
            eta * std::sqrt((1.0 - aPrev) / oneMinusAT * (1.0 - double(aT) / aPrev)));

        const at::Tensor tBatch = at::full({x.size(0)}, t, x.options().dtype(at::kLong));
        const at::Tensor output = guided(unet, guidance, x, tBatch);

        at::Tensor eps = output;
        at::Tensor predX0;
        if (parameterization == Parameterization::V) {
            eps = schedule.predictNoise(parameterization, x, tBatch, output);
            predX0 = schedule.predictStart(parameterization, x, tBatch, output);
        } else {
            predX0 = (x - rowScalar(std::sqrt(oneMinusAT), x) * eps) / rowScalar(std::sqrt(aT), x);
        }
        const at::Tensor direction = rowScalar(std::sqrt(1.0f - aPrev - sigma * sigma), x) * eps;
        x = rowScalar(std::sqrt(aPrev), x) * predX0 + direction;
        if (sigma != 0.0f) {
            x = x + rowScalar(sigma, x) * noise(x);
        }
        reportStep(progress, step + 1, total);
    }
    return x;
}

// k-diffusion's DiscreteSchedule over the model's alphas_cumprod, in float32 like its buffers.
struct DiscreteSigmas
{
    at::Tensor logSigmas; // [T] on the sampling device

    // sigma [B] -> fractional timesteps [B] (sigma_to_t, no quantisation).
    at::Tensor sigmaToT(const at::Tensor& sigma) const
    {
        const at::Tensor logSigma = sigma.log();
        const at::Tensor dists = logSigma - logSigmas.unsqueeze(1);
        const at::Tensor low = dists.ge(0).cumsum(0).argmax(0).clamp_max(logSigmas.size(0) - 2);
        const at::Tensor high = low + 1;
        const at::Tensor lowLog = logSigmas.index_select(0, low);
        const at::Tensor highLog = logSigmas.index_select(0, high);
        const at::Tensor w = ((lowLog - logSigma) / (lowLog - highLog)).clamp(0, 1);
        return (1 - w) * low + w * high;
    }

    // get_sigmas(n): t = linspace(T - 1, 0, n), interpolated in log sigma, then a final 0.
    at::Tensor sigmas(int steps) const
    {
        const at::Tensor table = logSigmas.cpu();
        const at::Tensor t = at::linspace(double(table.size(0) - 1), 0.0, steps, at::kFloat);
        const at::Tensor low = t.floor().to(at::kLong);
        const at::Tensor high = t.ceil().to(at::kLong);
        const at::Tensor w = t.frac();
        const at::Tensor logSigma =
            (1 - w) * table.index_select(0, low) + w * table.index_select(0, high);
        return at::cat({logSigma.exp(), at::zeros({1}, at::kFloat)});
    }
};

DiscreteSigmas discreteSigmas(const NoiseSchedule& schedule, c10::Device device)
{
    const at::Tensor& acp = schedule.alphasCumprod();
    return {((1 - acp) / acp).pow(0.5).log().to(device)};
}

// CompVisDenoiser / CompVisVDenoiser: D(x, sigma) from the UNet's eps or v prediction.
Denoiser kDiffusionDenoiser(StableDiffusion& model, const DiscreteSigmas& schedule)
{
    const bool isV = model.parameterization() == Parameterization::V;
    return [&model, &schedule, isV](const at::Tensor& x, const at::Tensor& sigma,
                                    const at::Tensor& context) {
        const at::Tensor sigmaRows = sigma.reshape({-1, 1, 1, 1});
        const at::Tensor denominator = (sigmaRows.pow(2) + 1).pow(0.5);
        const at::Tensor cIn = denominator.reciprocal();
        const at::Tensor out = model.denoise(x * cIn, schedule.sigmaToT(sigma), context);
        if (!isV) {
            return x + out * -sigmaRows;
        }
        const at::Tensor cSkip = (sigmaRows.pow(2) + 1).reciprocal();
        const at::Tensor cOut = -sigmaRows / denominator;
        return out * cOut + x * cSkip;
    };
}

// k-diffusion get_ancestral_step, in float32 like its 0-dim sigma tensors.
std::pair<float, float> ancestralStep(float sigmaFrom, float sigmaTo, double eta)
{
    if (eta == 0.0) {
        return {sigmaTo, 0.0f};
    }
    const float variance =
        sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom);
    const float sigmaUp = std::min(sigmaTo, static_cast<float>(eta) * std::sqrt(variance));
    const float sigmaDown = std::sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
    return {sigmaDown, sigmaUp};
}

// k-diffusion sample_euler_ancestral as the webui drives it (spec 5.5).
at::Tensor sampleEulerAncestral(StableDiffusion& model, const SamplerSettings& settings,
                                const at::Tensor& start, const Guidance& guidance,
                                const NoiseSource& noise, const SamplerProgress& progress)
{
    const DiscreteSigmas schedule = discreteSigmas(model.schedule(), start.device());
    const at::Tensor sigmaTensor = schedule.sigmas(settings.steps).contiguous();
    const float* sigmas = sigmaTensor.data_ptr<float>();
    const double eta = settings.eta < 0 ? 1.0 : settings.eta;
    const Denoiser denoiser = kDiffusionDenoiser(model, schedule);

    at::Tensor x = start * scalarLike(sigmas[0], start);
    for (int i = 0; i < settings.steps; ++i) {
        const float sigma = sigmas[i];
        const float sigmaNext = sigmas[i + 1];
        const at::Tensor level = at::full({x.size(0)}, sigma, x.options());
        const at::Tensor denoised = guided(denoiser, guidance, x, level);

        const auto [sigmaDown, sigmaUp] = ancestralStep(sigma, sigmaNext, eta);
        const at::Tensor d = (x - denoised) / scalarLike(sigma, x).reshape({1, 1, 1, 1});
        x = x + d * scalarLike(sigmaDown - sigma, x);
        if (sigmaNext > 0) {
            x = x + noise(x) * scalarLike(sigmaUp, x);
        }
        reportStep(progress, i + 1, settings.steps);
    }
    return x;
}

void checkSettings(const SamplerSettings& settings)
{
    if (settings.steps < 1) {
        throw Error(QStringLiteral("steps: %1 is not a positive number of sampler steps")
                        .arg(settings.steps));
    }
    if (!std::isfinite(settings.cfgScale)) {
        throw Error(QStringLiteral("CFG scale: give a finite number (7 is the webui default)"));
    }
    if (!(settings.eta >= 0 || settings.eta == -1.0) || !std::isfinite(settings.eta)) {
        throw Error(QStringLiteral("eta: %1 is not allowed; give 0 or more, or -1 for the "
                                   "sampler's default")
                        .arg(settings.eta));
    }
}

QString shapeText(const at::Tensor& tensor)
{
    return QString::fromStdString(c10::str(tensor.sizes()));
}

// The conditioning on the noise's device, uncond expanded to the batch.
Guidance makeGuidance(const SamplerSettings& settings, const at::Tensor& noise,
                      const at::Tensor& cond, const at::Tensor& uncond)
{
    const int64_t batch = noise.size(0);
    const bool condOk = cond.dim() == 3 && cond.size(0) == batch;
    const bool uncondOk = uncond.dim() == 3 && (uncond.size(0) == 1 || uncond.size(0) == batch) &&
                          cond.dim() == 3 && uncond.size(2) == cond.size(2);
    if (noise.dim() != 4 || !condOk || !uncondOk) {
        throw Error(QStringLiteral("sampler inputs: noise %1 should be [B, C, h, w], cond %2 "
                                   "[B, T, C'] and uncond %3 [B or 1, T', C']")
                        .arg(shapeText(noise), shapeText(cond), shapeText(uncond)));
    }
    const c10::Device device = noise.device();
    Guidance guidance;
    guidance.cond = cond.to(device, at::kFloat);
    guidance.uncond = uncond.to(device, at::kFloat).expand({batch, -1, -1}).contiguous();
    guidance.scale = settings.cfgScale;
    guidance.uncondFirst = settings.kind == SamplerKind::Ddim;
    return guidance;
}

at::Tensor sample(StableDiffusion& model, const SamplerSettings& settings, const at::Tensor& noise,
                  const at::Tensor& cond, const at::Tensor& uncond, const NoiseSource& source,
                  const SamplerProgress& progress)
{
    checkSettings(settings);
    torch::NoGradGuard noGrad;
    const at::Tensor start = noise.to(model.device(), at::kFloat);
    const Guidance guidance = makeGuidance(settings, start, cond, uncond);
    if (settings.kind == SamplerKind::Ddim) {
        return sampleDdim(model, settings, start, guidance, source, progress);
    }
    return sampleEulerAncestral(model, settings, start, guidance, source, progress);
}

// The webui's quote(): values holding a comma, colon or newline are written as JSON strings.
QString quoted(const QString& value)
{
    if (!value.contains(QLatin1Char(',')) && !value.contains(QLatin1Char(':')) &&
        !value.contains(QLatin1Char('\n'))) {
        return value;
    }
    QString result = QStringLiteral("\"");
    for (const QChar c : value) {
        if (c == QLatin1Char('"') || c == QLatin1Char('\\')) {
            result += QLatin1Char('\\') + c;
        } else if (c == QLatin1Char('\n')) {
            result += QStringLiteral("\\n");
        } else if (c.unicode() < 0x20) {
            result += QStringLiteral("\\u%1").arg(c.unicode(), 4, 16, QLatin1Char('0'));
        } else {
            result += c;
        }
    }
    return result + QLatin1Char('"');
}

QString number(double value)
{
    return QString::number(value, 'g', 10);
}

double defaultEta(SamplerKind kind)
{
    return kind == SamplerKind::Ddim ? 0.0 : 1.0;
}

void checkImageSize(const StableDiffusion& model, const GenerationRequest& request)
{
    const int factor = model.latentDownsampling();
    const std::pair<const char*, int> sides[] = {{"width", request.width},
                                                 {"height", request.height}};
    for (const auto& [name, value] : sides) {
        if (value < factor || value % factor != 0) {
            const int lower = std::max(factor, value / factor * factor);
            throw Error(QStringLiteral("%1: %2 is not a positive multiple of %3, the model's "
                                       "latent factor; use %4 or %5")
                            .arg(QLatin1String(name))
                            .arg(value)
                            .arg(factor)
                            .arg(lower)
                            .arg(lower + factor));
        }
    }
    if (request.batchSize < 1) {
        throw Error(QStringLiteral("batch size: %1 is not a positive number of images")
                        .arg(request.batchSize));
    }
}

// The start noise of the webui's txt2img: image i from its own CPU generator seeded seed + i,
// which keeps drawing that image's ancestral noise afterwards.
at::Tensor seededNoise(std::vector<at::Generator>& generators, const GenerationRequest& request,
                       int channels, int factor)
{
    std::vector<at::Tensor> rows;
    for (int i = 0; i < request.batchSize; ++i) {
        generators.push_back(
            at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(request.seed + i)));
        rows.push_back(drawNoise(generators.back(),
                                 {channels, request.height / factor, request.width / factor}));
    }
    return at::stack(rows);
}

// clamp((x + 1) / 2, 0, 1) * 255, truncated to uint8 like the webui's astype(np.uint8).
at::Tensor toPixels(const at::Tensor& image)
{
    const at::Tensor unit = ((image.to(at::kFloat) + 1.0) / 2.0).clamp(0.0, 1.0);
    return (unit * 255.0).to(at::kByte).permute({1, 2, 0}).contiguous().cpu();
}

} // namespace

QString samplerName(SamplerKind kind)
{
    return kind == SamplerKind::Ddim ? QStringLiteral("ddim") : QStringLiteral("euler_a");
}

QString samplerDisplayName(SamplerKind kind)
{
    return kind == SamplerKind::Ddim ? QStringLiteral("DDIM") : QStringLiteral("Euler a");
}

SamplerKind parseSamplerKind(const QString& name)
{
    for (const SamplerKind kind : {SamplerKind::EulerAncestral, SamplerKind::Ddim}) {
        if (name.compare(samplerName(kind), Qt::CaseInsensitive) == 0 ||
            name.compare(samplerDisplayName(kind), Qt::CaseInsensitive) == 0) {
            return kind;
        }
    }
    throw Error(QStringLiteral("sampler '%1' is not one of euler_a (\"Euler a\"), ddim").arg(name));
}

std::vector<int64_t> ddimTimesteps(int steps, int trainingTimesteps)
{
    // A stride of 1 (steps > T / 2) would shift the last timestep to T, past the schedule: ldm
    // fails there too.
    const int most = trainingTimesteps / 2;
    if (steps < 1 || steps > most) {
        throw Error(QStringLiteral("DDIM steps: %1 is outside 1..%2, what ldm's uniform "
                                   "discretisation allows for %3 timesteps")
                        .arg(steps)
                        .arg(most)
                        .arg(trainingTimesteps));
    }
    const int stride = trainingTimesteps / steps;
    std::vector<int64_t> timesteps;
    // ldm shifts [0, c, 2c, ...] by one. When c divides T - 1 (S = 3, 9, 27, 37, 111, 333 for
    // T = 1000) its last timestep is T, one past the schedule: ldm raises IndexError there, and
    // reading acp[T] would use whatever lies behind the buffer. That step is left out, so S = 3
    // runs 1, 334, 667: the S steps that were asked for.
    for (int t = 0; t + 1 < trainingTimesteps; t += stride) {
        timesteps.push_back(t + 1);
    }
    return timesteps;
}

at::Tensor sampleLatents(StableDiffusion& model, const SamplerSettings& settings,
                         const at::Tensor& noise, const at::Tensor& cond, const at::Tensor& uncond,
                         at::Generator& generator, const SamplerProgress& progress)
{
    const NoiseSource source = [&generator](const at::Tensor& like) {
        return drawNoise(generator, like.sizes()).to(like.device());
    };
    return sample(model, settings, noise, cond, uncond, source, progress);
}

at::Tensor sampleLatents(StableDiffusion& model, const SamplerSettings& settings,
                         const at::Tensor& noise, const at::Tensor& cond, const at::Tensor& uncond,
                         std::vector<at::Generator>& generators, const SamplerProgress& progress)
{
    if (noise.dim() < 1 || static_cast<size_t>(noise.size(0)) != generators.size()) {
        throw Error(QStringLiteral("sampler inputs: %1 generators for a batch of noise %2; give "
                                   "one per image")
                        .arg(generators.size())
                        .arg(shapeText(noise)));
    }
    const NoiseSource source = [&generators](const at::Tensor& like) {
        std::vector<at::Tensor> rows;
        for (at::Generator& generator : generators) {
            rows.push_back(drawNoise(generator, like.sizes().slice(1)));
        }
        return at::stack(rows).to(like.device());
    };
    return sample(model, settings, noise, cond, uncond, source, progress);
}

GeneratedImages generateImages(StableDiffusion& model, const GenerationRequest& request,
                               const std::vector<const Hypernetwork*>& hypernetworks,
                               const SamplerProgress& progress)
{
    checkImageSize(model, request);
    checkSettings(request.sampler);
    const UNetConfig& unet = model.config().unet;
    if (unet.inChannels != unet.outChannels) {
        throw Error(QStringLiteral("the model's UNet takes %1 input channels (an inpainting or "
                                   "depth model); text to image needs a plain model")
                        .arg(unet.inChannels));
    }
    torch::NoGradGuard noGrad;

    // The webui encodes one prompt per image (its prompts list), negative ones likewise.
    const QStringList prompts(request.batchSize, request.prompt);
    const QStringList negatives(request.batchSize, request.negativePrompt);
    const at::Tensor cond = model.encodePrompts(prompts);
    const at::Tensor uncond = model.encodePrompts(negatives);

    const int factor = model.latentDownsampling();
    std::vector<at::Generator> generators;
    const at::Tensor noise = seededNoise(generators, request, unet.outChannels, factor);
    const at::Tensor latents =
        sampleLatents(model, request.sampler, noise, cond, uncond, generators, progress);

    // One image at a time, like the webui's decode_latent_batch: the VAE's peak memory stays
    // that of one image.
    GeneratedImages result;
    std::vector<at::Tensor> pixels;
    for (int i = 0; i < request.batchSize; ++i) {
        pixels.push_back(toPixels(model.decodeLatents(latents.narrow(0, i, 1))[0]));
        result.infotexts.push_back(infotext(request, request.seed + i, model.checkpointName(),
                                            model.checkpointShortHash(), hypernetworks));
    }
    result.pixels = at::stack(pixels);
    return result;
}

QString infotext(const GenerationRequest& request, int64_t seed, const QString& modelName,
                 const QString& modelHash, const std::vector<const Hypernetwork*>& hypernetworks)
{
    const SamplerSettings& sampler = request.sampler;
    QStringList fields = {
        QStringLiteral("Steps: %1").arg(sampler.steps),
        QStringLiteral("Sampler: ") + samplerDisplayName(sampler.kind),
        QStringLiteral("CFG scale: ") + number(sampler.cfgScale),
        QStringLiteral("Seed: %1").arg(seed),
        QStringLiteral("Size: %1x%2").arg(request.width).arg(request.height),
    };
    if (!modelHash.isEmpty()) {
        fields << QStringLiteral("Model hash: ") + quoted(modelHash);
    }
    if (!modelName.isEmpty()) {
        fields << QStringLiteral("Model: ") + quoted(modelName);
    }
    if (!hypernetworks.empty()) {
        // One hypernetwork is written as the webui wrote it; a stack as comma-separated lists
        // in application order (quoted, so the webui's parser reads each list as one value).
        QStringList names;
        QStringList strengths;
        for (const Hypernetwork* hypernetwork : hypernetworks) {
            names << hypernetwork->config().name;
            strengths << number(hypernetwork->strength());
        }
        fields << QStringLiteral("Hypernet: ") + quoted(names.join(QStringLiteral(", ")));
        fields << QStringLiteral("Hypernet strength: ") +
                      quoted(strengths.join(QStringLiteral(", ")));
    }
    if (request.batchSize > 1) {
        fields << QStringLiteral("Batch size: %1").arg(request.batchSize);
        fields << QStringLiteral("Batch pos: %1").arg(seed - request.seed);
    }
    if (sampler.eta >= 0 && sampler.eta != defaultEta(sampler.kind)) {
        fields << QStringLiteral("Eta: ") + number(sampler.eta);
    }

    QString text = request.prompt;
    if (!request.negativePrompt.isEmpty()) {
        text += QStringLiteral("\nNegative prompt: ") + request.negativePrompt;
    }
    return text + QLatin1Char('\n') + fields.join(QStringLiteral(", "));
}

} // namespace studio
