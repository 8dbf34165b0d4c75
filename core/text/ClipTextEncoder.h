#pragma once

// The Stable Diffusion text encoders: the CLIP text transformer that turns token ids into the
// UNet's cross-attention context. Two checkpoint layouts share one network (spec
// sd-architecture.md section 3): SD1 stores OpenAI CLIP ViT-L/14 in the Hugging Face
// CLIPTextModel layout (QuickGELU, last layer), SD2 stores the OpenCLIP ViT-H/14 text tower
// (GELU, penultimate layer). Both are pre-LayerNorm transformers with a causal mask, run in
// float32; the module's registered names mirror the checkpoint keys of its layout, so
// io::loadModuleWeights fills it directly.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <QString>

#include <optional>
#include <vector>

namespace studio {

namespace io {
class TensorSource;
} // namespace io

// Where the text encoder lives in real single-file checkpoints.
inline constexpr char kSd1TextPrefix[] = "cond_stage_model.transformer.text_model.";
inline constexpr char kSd2TextPrefix[] = "cond_stage_model.model.";

enum class ClipTextLayout
{
    Sd1HuggingFace, // embeddings.*, encoder.layers.N.{self_attn.{q,k,v,out}_proj, mlp.fc1/2, ...}
    Sd2OpenClip,    // token_embedding, positional_embedding, transformer.resblocks.N.attn.in_proj_*
};

enum class ClipTextActivation
{
    QuickGelu, // x * sigmoid(1.702 x): OpenAI CLIP, SD1
    Gelu,      // exact erf GELU: OpenCLIP ViT-H, SD2
};

struct ClipTextConfig
{
    ClipTextLayout layout = ClipTextLayout::Sd1HuggingFace;
    int width = 768;
    int layers = 12;
    // Not stored in the weights: width / 64 for real models; a YAML's
    // cond_stage_config.params.heads overrides it (needed for the tiny test models).
    int heads = 12;
    int vocabSize = 49408;
    int contextLength = 77;
    ClipTextActivation activation = ClipTextActivation::QuickGelu;
    // Which hidden state forward() returns, with webui's CLIP-skip semantics
    // (CLIP_stop_at_last_layers): the last clipSkip - 1 blocks are skipped, then the final
    // LayerNorm is applied. 1 = SD1's "last"; 2 = SD1 "clip skip 2" and SD2's "penultimate"
    // (webui ignores its CLIP-skip setting for SD2, so SD2 callers keep 2). 1..layers.
    int clipSkip = 1;

    // The full-size models: CLIP ViT-L/14 text (768, 12 layers) and OpenCLIP ViT-H/14 text
    // (1024, 24 layers, penultimate).
    static ClipTextConfig sd1();
    static ClipTextConfig sd2();

    int headDim() const { return heads > 0 ? width / heads : 0; }

    // Throws studio::Error naming the field that is out of range.
    void validate() const;
};

struct DetectedClipText
{
    ClipTextConfig config;
    QString prefix; // the key prefix to load it with, e.g. kSd1TextPrefix
};

// Finds the text encoder of a checkpoint from its key names and shapes: the layout from which
// keys exist (SD1, the early SD1 layout without `text_model.`, SD2), the width and vocabulary
// from the token embedding, the context length from the position embedding, the layer count
// from the block indices; the activation and clipSkip from the layout (QuickGELU / 1 for SD1,
// GELU / 2 for SD2). Heads are not in the weights: `heads` (the YAML's `heads`) when given,
// else width / 64. Throws studio::Error when the source has no text encoder, when a shape is
// implausible, or when heads are not given and the width is not a multiple of 64.
DetectedClipText detectClipTextEncoder(const io::TensorSource& source,
                                       std::optional<int> heads = std::nullopt);

class ClipTextEncoderImpl : public torch::nn::Module
{
public:
    // Throws studio::Error for an invalid config. Weights are initialised arbitrarily; load
    // them with loadClipTextEncoder (or io::loadModuleWeights and the layout's prefix).
    explicit ClipTextEncoderImpl(const ClipTextConfig& config);

    /// input_ids [B, T] integer, 1 <= T <= contextLength (77 in SD) -> context [B, T, width]
    /// float32: the hidden state chosen by config().clipSkip, after the final LayerNorm.
    /// Throws studio::Error for a wrong shape or an id outside the vocabulary.
    torch::Tensor forward(const torch::Tensor& inputIds);

    /// input_ids [B, T] -> layers + 1 tensors [B, T, width], as Hugging Face's hidden_states:
    /// [0] = token + position embeddings, [n] = output of block n (1-based), no final LayerNorm.
    std::vector<torch::Tensor> hiddenStates(const torch::Tensor& inputIds);

    /// hidden [..., width] -> [..., width]: final_layer_norm (SD1) / ln_final (SD2).
    torch::Tensor finalLayerNorm(const torch::Tensor& hidden);

    const ClipTextConfig& config() const { return m_config; }

private:
    void buildSd1Layout();
    void buildSd2Layout();
    torch::Tensor embed(const torch::Tensor& inputIds);
    torch::Tensor runBlock(int index, const torch::Tensor& hidden, const torch::Tensor& mask);

    ClipTextConfig m_config;
    torch::nn::Embedding m_tokenEmbedding{nullptr};
    torch::Tensor m_positionEmbedding; // [contextLength, width], registered per layout
    torch::nn::ModuleList m_blocks{nullptr};
    torch::nn::LayerNorm m_finalNorm{nullptr};
};

TORCH_MODULE(ClipTextEncoder);

// Builds the encoder for `config` and copies every weight from `prefix + name` (strict: a
// missing key or a wrong shape throws studio::Error naming the file and the key; unused keys
// such as position_ids, text_projection and logit_scale are skipped). The text encoder is
// frozen in SD training, so the result is in eval mode with requires_grad off.
ClipTextEncoder loadClipTextEncoder(const io::TensorSource& source, const ClipTextConfig& config,
                                    const QString& prefix);

} // namespace studio
