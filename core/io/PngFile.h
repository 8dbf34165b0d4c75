#pragma once

// PNG files with text chunks: previews and generated images carry their generation parameters
// in a "parameters" chunk, as the webui writes them, so the webui's PNG Info tab reads them back.

#include <ATen/core/Tensor.h>

#include <QString>

#include <utility>
#include <vector>

namespace studio::io {

using PngText = std::vector<std::pair<QString, QString>>; // keyword, text

// Writes `pixels` ([H, W, 3] uint8, RGB, any device) as an 8-bit RGB PNG with `text` chunks
// (tEXt when the text is Latin-1, iTXt in UTF-8 otherwise), atomically. Throws studio::Error
// naming `path` when it cannot be written or the tensor is not an image.
void writePng(const QString& path, const at::Tensor& pixels, const PngText& text = {});

// The text chunks (tEXt, zTXt, iTXt) of a PNG file, in file order. Throws studio::Error naming
// `path` when it is not a readable PNG.
PngText readPngText(const QString& path);

// Decodes a PNG (or any image OpenCV reads) into [H, W, 3] uint8 RGB. Throws studio::Error
// naming `path` when it cannot be read.
at::Tensor readImageRgb(const QString& path);

} // namespace studio::io
