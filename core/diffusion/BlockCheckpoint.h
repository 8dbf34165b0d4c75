#pragma once

// Gradient checkpointing of one UNet block: the forward pass keeps only the block's inputs, and
// the backward pass runs the block again to get its gradients. LibTorch has no checkpoint
// utility, so this is a custom autograd function.
//
// Unlike ldm's checkpoint, the hypernetworks' parameters are inputs of the function, so they get
// their gradients through a checkpointed block too. Random state (dropout in a hypernetwork) is
// saved with the inputs and restored for the recomputation, so both passes see the same masks.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <functional>
#include <vector>

namespace studio {

class Hypernetwork;

using BlockBody = std::function<at::Tensor(const at::Tensor& h, const at::Tensor& emb,
                                           const at::Tensor& context)>;

// body(h, emb, context), differentiable w.r.t. the inputs, the block's parameters and the
// hypernetworks' parameters, without storing the block's activations.
at::Tensor checkpointBlock(BlockBody body, const at::Tensor& h, const at::Tensor& emb,
                           const at::Tensor& context, const torch::nn::Module& block,
                           const std::vector<const Hypernetwork*>& hypernetworks);

} // namespace studio
