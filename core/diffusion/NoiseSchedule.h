#pragma once

// The DDPM noise schedule of ldm's LatentDiffusion (register_schedule, q_sample, get_v, the
// training targets and the conversions samplers need; spec sd-architecture.md 5.1-5.2).
//
// Every buffer is computed in float64 and rounded once to float32, exactly as ldm stores them
// (and as real checkpoints carry them under their bare names). Timestep tensors hold integer
// indices [0, T) of any dtype (the reference data stores them as float); coefficients are
// gathered per batch element and broadcast over the remaining dimensions.

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <QString>

#include <optional>
#include <utility>
#include <vector>

namespace studio {

// What the UNet predicts: the noise (SD1, SD2-base) or v (SD2 768-v).
enum class Parameterization
{
    Eps,
    V,
};

class NoiseSchedule
{
public:
    static constexpr int kDefaultTimesteps = 1000;
    static constexpr double kDefaultLinearStart = 0.00085;
    static constexpr double kDefaultLinearEnd = 0.012;

    // ldm's "linear" schedule: betas = linspace(sqrt(start), sqrt(end), T, float64)^2. Throws
    // studio::Error for T < 2 or a start/end outside (0, 1).
    static NoiseSchedule linear(int timesteps = kDefaultTimesteps,
                                double linearStart = kDefaultLinearStart,
                                double linearEnd = kDefaultLinearEnd);

    int timesteps() const { return m_timesteps; }

    // The buffers, float32 [T], on the CPU, named as in ldm.
    const at::Tensor& betas() const { return m_betas; }
    const at::Tensor& alphasCumprod() const { return m_alphasCumprod; }
    const at::Tensor& alphasCumprodPrev() const { return m_alphasCumprodPrev; }
    const at::Tensor& sqrtAlphasCumprod() const { return m_sqrtAlphasCumprod; }
    const at::Tensor& sqrtOneMinusAlphasCumprod() const { return m_sqrtOneMinusAlphasCumprod; }
    const at::Tensor& logOneMinusAlphasCumprod() const { return m_logOneMinusAlphasCumprod; }
    const at::Tensor& sqrtRecipAlphasCumprod() const { return m_sqrtRecipAlphasCumprod; }
    const at::Tensor& sqrtRecipm1AlphasCumprod() const { return m_sqrtRecipm1AlphasCumprod; }
    const at::Tensor& posteriorVariance() const { return m_posteriorVariance; }
    const at::Tensor& posteriorLogVarianceClipped() const { return m_posteriorLogVarianceClipped; }
    const at::Tensor& posteriorMeanCoef1() const { return m_posteriorMeanCoef1; }
    const at::Tensor& posteriorMeanCoef2() const { return m_posteriorMeanCoef2; }

    // All 12 buffers under their checkpoint names ("betas", "alphas_cumprod", ...), in ldm's
    // registration order.
    std::vector<std::pair<QString, at::Tensor>> namedBuffers() const;

    /// batch size, generator -> timesteps [batch] int64 uniform in [0, T) on `device`, like
    /// ldm's torch.randint(0, num_timesteps, (B,))
    at::Tensor sampleTimesteps(int64_t batch, std::optional<at::Generator> generator = {},
                               c10::Device device = c10::kCPU) const;

    /// x0 [B, ...], t [B], noise like x0 -> x_t like x0 (q_sample)
    at::Tensor qSample(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) const;

    /// x0 [B, ...], noise like x0, t [B] -> v = sqrt(acp) * noise - sqrt(1 - acp) * x0 (get_v)
    at::Tensor velocity(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& t) const;

    /// x0 [B, ...], noise like x0, t [B] -> what the model learns to output (p_losses target):
    /// the noise for Eps, v for V
    at::Tensor trainingTarget(Parameterization parameterization, const at::Tensor& x0,
                              const at::Tensor& noise, const at::Tensor& t) const;

    /// x_t [B, ...], t [B], model output like x_t -> predicted x0 (Eps: predict_start_from_noise,
    /// V: predict_start_from_z_and_v)
    at::Tensor predictStart(Parameterization parameterization, const at::Tensor& xT,
                            const at::Tensor& t, const at::Tensor& modelOutput) const;

    /// x_t [B, ...], t [B], model output like x_t -> predicted noise (Eps: the output itself,
    /// V: predict_eps_from_z_and_v)
    at::Tensor predictNoise(Parameterization parameterization, const at::Tensor& xT,
                            const at::Tensor& t, const at::Tensor& modelOutput) const;

private:
    NoiseSchedule() = default;

    // ldm's extract_into_tensor: buffer[t] reshaped to [B, 1, ...] for `like`, on its device.
    at::Tensor extract(const at::Tensor& buffer, const at::Tensor& t, const at::Tensor& like) const;

    int m_timesteps = 0;
    at::Tensor m_betas;
    at::Tensor m_alphasCumprod;
    at::Tensor m_alphasCumprodPrev;
    at::Tensor m_sqrtAlphasCumprod;
    at::Tensor m_sqrtOneMinusAlphasCumprod;
    at::Tensor m_logOneMinusAlphasCumprod;
    at::Tensor m_sqrtRecipAlphasCumprod;
    at::Tensor m_sqrtRecipm1AlphasCumprod;
    at::Tensor m_posteriorVariance;
    at::Tensor m_posteriorLogVarianceClipped;
    at::Tensor m_posteriorMeanCoef1;
    at::Tensor m_posteriorMeanCoef2;
};

} // namespace studio
