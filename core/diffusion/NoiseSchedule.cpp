#include "core/diffusion/NoiseSchedule.h"

#include "core/Error.h"

#include <ATen/ATen.h>

#include <cmath>

namespace studio {

namespace {

// ldm stores every buffer with torch.tensor(numpy_float64_array, dtype=torch.float32).
at::Tensor toBuffer(const at::Tensor& float64)
{
    return float64.to(at::kFloat).contiguous();
}

QString shapeText(at::IntArrayRef sizes)
{
    return QString::fromStdString(c10::str(sizes));
}

// `t` as int64 indices on the device of `like`. ldm gathers with the indices as given; an
// out-of-range or fractional one is refused here instead of failing inside gather (a device
// assert on CUDA).
at::Tensor timestepIndices(const at::Tensor& t, const at::Tensor& like, int timesteps)
{
    if (t.dim() != 1 || like.dim() < 1 || t.size(0) != like.size(0)) {
        throw Error(QStringLiteral("noise schedule: timesteps %1 do not match a batch of %2")
                        .arg(shapeText(t.sizes()), shapeText(like.sizes())));
    }

    const at::Tensor index = t.to(like.device(), at::kLong);
    if (index.numel() == 0) {
        return index;
    }
    const bool integral =
        !t.is_floating_point() || at::equal(index.to(t.dtype()), t.to(like.device()));
    const bool inRange =
        index.min().item<int64_t>() >= 0 && index.max().item<int64_t>() < timesteps;
    if (!integral || !inRange) {
        throw Error(
            QStringLiteral("noise schedule: timesteps must be integers in [0, %1)").arg(timesteps));
    }
    return index;
}

} // namespace

NoiseSchedule NoiseSchedule::linear(int timesteps, double linearStart, double linearEnd)
{
    if (timesteps < 2) {
        throw Error(
            QStringLiteral("noise schedule: timesteps must be at least 2, got %1").arg(timesteps));
    }
    const auto inUnitInterval = [](double value) { return value > 0.0 && value < 1.0; };
    if (!inUnitInterval(linearStart) || !inUnitInterval(linearEnd)) {
        throw Error(QStringLiteral("noise schedule: linear_start %1 and linear_end %2 must lie "
                                   "in (0, 1)")
                        .arg(linearStart)
                        .arg(linearEnd));
    }

    // make_beta_schedule("linear"): Python's `** 0.5` is pow(), then torch's float64 linspace
    // (its fill order matters for the last bit) squared.
    const at::Tensor betas = at::linspace(std::pow(linearStart, 0.5), std::pow(linearEnd, 0.5),
                                          timesteps, at::TensorOptions().dtype(at::kDouble))
                                 .pow(2);
    const at::Tensor alphas = 1.0 - betas;
    const at::Tensor acp = at::cumprod(alphas, /*dim=*/0);
    const at::Tensor acpPrev =
        at::cat({at::ones({1}, acp.options()), acp.slice(/*dim=*/0, 0, timesteps - 1)});
    const at::Tensor oneMinusAcp = 1.0 - acp;

    NoiseSchedule schedule;
    schedule.m_timesteps = timesteps;
    schedule.m_betas = toBuffer(betas);
    schedule.m_alphasCumprod = toBuffer(acp);
    schedule.m_alphasCumprodPrev = toBuffer(acpPrev);
    // Square roots and logs of the float64 values, not of the rounded float32 buffers.
    schedule.m_sqrtAlphasCumprod = toBuffer(at::sqrt(acp));
    schedule.m_sqrtOneMinusAlphasCumprod = toBuffer(at::sqrt(oneMinusAcp));
    schedule.m_logOneMinusAlphasCumprod = toBuffer(at::log(oneMinusAcp));
    schedule.m_sqrtRecipAlphasCumprod = toBuffer(at::sqrt(1.0 / acp));
    schedule.m_sqrtRecipm1AlphasCumprod = toBuffer(at::sqrt(1.0 / acp - 1.0));

    // v_posterior is 0 in every SD config, which leaves ldm's plain formula.
    const at::Tensor posteriorVariance = betas * (1.0 - acpPrev) / oneMinusAcp;
    schedule.m_posteriorVariance = toBuffer(posteriorVariance);
    schedule.m_posteriorLogVarianceClipped =
        toBuffer(at::log(at::clamp_min(posteriorVariance, 1e-20)));
    schedule.m_posteriorMeanCoef1 = toBuffer(betas * at::sqrt(acpPrev) / oneMinusAcp);
    schedule.m_posteriorMeanCoef2 = toBuffer((1.0 - acpPrev) * at::sqrt(alphas) / oneMinusAcp);
    return schedule;
}

std::vector<std::pair<QString, at::Tensor>> NoiseSchedule::namedBuffers() const
{
    return {
        {QStringLiteral("betas"), m_betas},
        {QStringLiteral("alphas_cumprod"), m_alphasCumprod},
        {QStringLiteral("alphas_cumprod_prev"), m_alphasCumprodPrev},
        {QStringLiteral("sqrt_alphas_cumprod"), m_sqrtAlphasCumprod},
        {QStringLiteral("sqrt_one_minus_alphas_cumprod"), m_sqrtOneMinusAlphasCumprod},
        {QStringLiteral("log_one_minus_alphas_cumprod"), m_logOneMinusAlphasCumprod},
        {QStringLiteral("sqrt_recip_alphas_cumprod"), m_sqrtRecipAlphasCumprod},
        {QStringLiteral("sqrt_recipm1_alphas_cumprod"), m_sqrtRecipm1AlphasCumprod},
        {QStringLiteral("posterior_variance"), m_posteriorVariance},
        {QStringLiteral("posterior_log_variance_clipped"), m_posteriorLogVarianceClipped},
        {QStringLiteral("posterior_mean_coef1"), m_posteriorMeanCoef1},
        {QStringLiteral("posterior_mean_coef2"), m_posteriorMeanCoef2},
    };
}

at::Tensor NoiseSchedule::sampleTimesteps(int64_t batch, std::optional<at::Generator> generator,
                                          c10::Device device) const
{
    // LibTorch 1.13 takes c10::optional, which does not convert from std::optional.
    const c10::optional<at::Generator> source =
        generator ? c10::optional<at::Generator>(*generator) : c10::nullopt;
    return at::randint(m_timesteps, {batch}, source,
                       at::TensorOptions().dtype(at::kLong).device(device));
}

at::Tensor NoiseSchedule::qSample(const at::Tensor& x0, const at::Tensor& t,
                                  const at::Tensor& noise) const
{
    return extract(m_sqrtAlphasCumprod, t, x0) * x0 +
           extract(m_sqrtOneMinusAlphasCumprod, t, x0) * noise;
}

at::Tensor NoiseSchedule::velocity(const at::Tensor& x0, const at::Tensor& noise,
                                   const at::Tensor& t) const
{
    return extract(m_sqrtAlphasCumprod, t, x0) * noise -
           extract(m_sqrtOneMinusAlphasCumprod, t, x0) * x0;
}

at::Tensor NoiseSchedule::trainingTarget(Parameterization parameterization, const at::Tensor& x0,
                                         const at::Tensor& noise, const at::Tensor& t) const
{
    if (parameterization == Parameterization::V) {
        return velocity(x0, noise, t);
    }
    return noise;
}

at::Tensor NoiseSchedule::predictStart(Parameterization parameterization, const at::Tensor& xT,
                                       const at::Tensor& t, const at::Tensor& modelOutput) const
{
    if (parameterization == Parameterization::V) {
        return extract(m_sqrtAlphasCumprod, t, xT) * xT -
               extract(m_sqrtOneMinusAlphasCumprod, t, xT) * modelOutput;
    }
    return extract(m_sqrtRecipAlphasCumprod, t, xT) * xT -
           extract(m_sqrtRecipm1AlphasCumprod, t, xT) * modelOutput;
}

at::Tensor NoiseSchedule::predictNoise(Parameterization parameterization, const at::Tensor& xT,
                                       const at::Tensor& t, const at::Tensor& modelOutput) const
{
    if (parameterization == Parameterization::V) {
        return extract(m_sqrtAlphasCumprod, t, xT) * modelOutput +
               extract(m_sqrtOneMinusAlphasCumprod, t, xT) * xT;
    }
    return modelOutput;
}

at::Tensor NoiseSchedule::extract(const at::Tensor& buffer, const at::Tensor& t,
                                  const at::Tensor& like) const
{
    const at::Tensor index = timestepIndices(t, like, m_timesteps);

    std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
    shape[0] = like.size(0);
    return buffer.to(like.device()).gather(/*dim=*/-1, index).reshape(shape);
}

} // namespace studio
