#pragma once

// Numbers that tell the demo's ink style from the plain one, for checking that a hypernetwork
// trained on ink pictures moves generated images toward them. Both take RGB pictures as uint8
// [H, W, 3] or a batch [N, H, W, 3] (any device) and average over every picture.
//
// Edge density: the fraction of pixels whose Sobel gradient of the luma (Y = 0.299 R +
// 0.587 G + 0.114 B, 0 to 255), divided by 4 so that a sharp step of height h reads h, exceeds
// `threshold` (default 40). The one-pixel border is left out. Flat plain pictures have edges
// only along shape boundaries; ink pictures add both sides of every thick outline and the
// hatching, so their density is several times higher.
//
// Palette distance: the mean Euclidean RGB distance, divided by 255, from each pixel to the
// nearest colour of the ink palette (core/demo/ShapeScenes.h inkPalette()): near 0 for ink
// pictures (anti-aliasing, hatching and grain only), far larger for saturated plain colours.

#include <ATen/core/Tensor.h>

namespace studio::demo {

constexpr double kEdgeThreshold = 40.0;

struct StyleStatistics
{
    double edgeDensity = 0.0;
    double paletteDistance = 0.0;
};

double edgeDensity(const at::Tensor& rgb, double threshold = kEdgeThreshold);
double paletteDistance(const at::Tensor& rgb);
StyleStatistics styleStatistics(const at::Tensor& rgb);

} // namespace studio::demo
