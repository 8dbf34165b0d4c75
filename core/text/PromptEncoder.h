#pragma once

// Prompts to text conditioning as the webui builds it (spec sd-architecture.md section 4):
// emphasis parsing, 75-token chunks (with BREAK and the comma backtrack), one encoder pass per
// chunk batch, the "Original" emphasis weighting with mean restoration, chunks concatenated.

#include "core/text/ClipTextEncoder.h"
#include "core/text/ClipTokenizer.h"
#include "core/text/PromptParser.h"

#include <ATen/core/Tensor.h>

#include <QStringList>

namespace studio {

class PromptEncoder
{
public:
    // SD2 encoders (OpenCLIP layout) pad with 0 after the end token and unescape HTML like
    // open_clip; SD1 keeps end-token padding and, like the Hugging Face tokenizer, no unescaping.
    PromptEncoder(ClipTokenizer tokenizer, ClipTextEncoder encoder,
                  PromptChunkingOptions options = {});

    /// prompts (B texts) -> context [B, 77 * k, width], k = the most chunks any prompt needs.
    /// Runs without gradients.
    at::Tensor encode(const QStringList& prompts) const;

private:
    at::Tensor encodeChunkBatch(const std::vector<TokenizedPrompt>& prompts, size_t chunk) const;

    ClipTokenizer m_tokenizer;
    mutable ClipTextEncoder m_encoder;
    PromptChunkingOptions m_options;
    bool m_zeroPadding;
};

// z [B, 77, C] and weights [B, 77] -> z * weights, rescaled so the mean over every element is
// unchanged (one scalar for the whole batch, as the webui does).
at::Tensor applyEmphasis(const at::Tensor& z, const at::Tensor& weights);

} // namespace studio
