#include "core/demo/StyleStatistics.h"

#include "core/Error.h"
#include "core/demo/ShapeScenes.h"

#include <ATen/ATen.h>

namespace studio::demo {

namespace {

// [N, H, W, 3] float on the CPU, or studio::Error when `rgb` is not uint8 RGB pictures.
at::Tensor batchOf(const at::Tensor& rgb)
{
    const bool image = (rgb.dim() == 3 || rgb.dim() == 4) && rgb.size(-1) == 3 &&
                       rgb.scalar_type() == at::kByte && rgb.numel() > 0;
    if (!image) {
        throw Error(QStringLiteral("style statistics take uint8 RGB pictures [H, W, 3] or "
                                   "[N, H, W, 3], not %1 of %2 dimensions")
                        .arg(QString::fromLatin1(c10::toString(rgb.scalar_type())))
                        .arg(rgb.dim()));
    }
    const at::Tensor batch = rgb.dim() == 3 ? rgb.unsqueeze(0) : rgb;
    return batch.to(at::kCPU).to(at::kFloat);
}

} // namespace

double edgeDensity(const at::Tensor& rgb, double threshold)
{
    const at::Tensor pixels = batchOf(rgb);
    if (pixels.size(1) < 3 || pixels.size(2) < 3) {
        throw Error(QStringLiteral("edge density needs pictures of at least 3 x 3 pixels"));
    }
    const at::Tensor weights = at::tensor({0.299f, 0.587f, 0.114f});
    const at::Tensor luma = at::matmul(pixels, weights).unsqueeze(1); // [N, 1, H, W]
    const at::Tensor sobelX = at::tensor({-1.f, 0.f, 1.f, -2.f, 0.f, 2.f, -1.f, 0.f, 1.f});
    const at::Tensor kernels =
        at::stack({sobelX.view({3, 3}), sobelX.view({3, 3}).t()}).unsqueeze(1); // [2, 1, 3, 3]
    const at::Tensor gradient = at::conv2d(luma, kernels);                      // no padding
    const at::Tensor magnitude = gradient.pow(2).sum(1).sqrt() / 4.0;
    return magnitude.gt(threshold).to(at::kFloat).mean().item<double>();
}

double paletteDistance(const at::Tensor& rgb)
{
    const at::Tensor pixels = batchOf(rgb).reshape({-1, 3});
    std::vector<float> values;
    for (const Rgb& colour : inkPalette()) {
        values.insert(values.end(), {float(colour[0]), float(colour[1]), float(colour[2])});
    }
    const at::Tensor palette = at::tensor(values).view({-1, 3});
    // Exact differences: cdist's matrix-product shortcut loses precision for close colours.
    const at::Tensor distances =
        (pixels.unsqueeze(1) - palette.unsqueeze(0)).pow(2).sum(-1).sqrt(); // [pixels, colours]
    return (std::get<0>(distances.min(1)) / 255.0).mean().item<double>();
}

StyleStatistics styleStatistics(const at::Tensor& rgb)
{
    return {edgeDensity(rgb), paletteDistance(rgb)};
}

} // namespace studio::demo
