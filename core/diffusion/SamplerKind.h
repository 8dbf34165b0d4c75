#pragma once

// The preview and generation samplers by name, without the sampling code: run files and the
// studio's forms name a sampler, and neither may pull LibTorch headers in (ui/ never includes
// them). The samplers themselves are in core/diffusion/Sampler.h.

#include <QString>

namespace studio {

enum class SamplerKind
{
    EulerAncestral, // "euler_a" (webui "Euler a")
    Ddim,           // "ddim"
};

QString samplerName(SamplerKind kind);        // "euler_a", "ddim"
QString samplerDisplayName(SamplerKind kind); // "Euler a", "DDIM" (the webui's infotext names)
// Accepts "euler_a", "Euler a", "ddim", "DDIM"; throws studio::Error listing the choices.
SamplerKind parseSamplerKind(const QString& name);

} // namespace studio
