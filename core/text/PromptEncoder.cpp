#include "core/text/PromptEncoder.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

namespace studio {

PromptEncoder::PromptEncoder(ClipTokenizer tokenizer, ClipTextEncoder encoder,
                             PromptChunkingOptions options)
    : m_tokenizer(std::move(tokenizer)), m_encoder(std::move(encoder)), m_options(options),
      m_zeroPadding(m_encoder->config().layout == ClipTextLayout::Sd2OpenClip)
{
    m_tokenizer.setUnescapeHtml(m_zeroPadding);
}

at::Tensor PromptEncoder::encode(const QStringList& prompts) const
{
    std::vector<TokenizedPrompt> tokenized;
    for (const QString& prompt : prompts) {
        tokenized.push_back(tokenizePrompt(m_tokenizer, prompt, m_options));
    }
    padToCommonChunkCount(tokenized, chunkEndsOf(m_tokenizer));

    torch::NoGradGuard noGrad;
    std::vector<at::Tensor> chunks;
    for (size_t chunk = 0; chunk < tokenized.front().chunks.size(); ++chunk) {
        chunks.push_back(encodeChunkBatch(tokenized, chunk));
    }
    return at::cat(chunks, /*dim=*/1);
}

at::Tensor PromptEncoder::encodeChunkBatch(const std::vector<TokenizedPrompt>& prompts,
                                           size_t chunk) const
{
    std::vector<int64_t> ids;
    std::vector<float> weights;
    for (const TokenizedPrompt& prompt : prompts) {
        PromptChunk tokens = prompt.chunks[chunk];
        if (m_zeroPadding) {
            zeroPadAfterEnd(tokens, chunkEndsOf(m_tokenizer));
        }
        ids.insert(ids.end(), tokens.tokens.begin(), tokens.tokens.end());
        weights.insert(weights.end(), tokens.weights.begin(), tokens.weights.end());
    }
    const auto batch = static_cast<int64_t>(prompts.size());
    // The encoder may live on a GPU; the ids are built on the CPU.
    const c10::Device device = m_encoder->parameters().front().device();
    const at::Tensor idTensor = at::tensor(ids, at::kLong).reshape({batch, -1}).to(device);
    const at::Tensor weightTensor = at::tensor(weights, at::kFloat).reshape({batch, -1}).to(device);
    return applyEmphasis(m_encoder->forward(idTensor), weightTensor);
}

at::Tensor applyEmphasis(const at::Tensor& z, const at::Tensor& weights)
{
    // All weights 1 leaves z untouched, bit for bit (spec 4.3).
    if (weights.eq(1.0).all().item<bool>()) {
        return z;
    }
    const at::Tensor originalMean = z.mean();
    const at::Tensor weighted = z * weights.to(z.dtype()).unsqueeze(-1);
    return weighted * (originalMean / weighted.mean());
}

} // namespace studio
