#include "core/diffusion/BlockCheckpoint.h"

#include "core/hypernetwork/Hypernetwork.h"

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <mutex>

namespace studio {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BodyHolder : torch::CustomClassHolder
{
    explicit BodyHolder(BlockBody function) : body(std::move(function)) {}
    BlockBody body;
};

at::Generator generatorFor(const at::Tensor& tensor)
{
    return at::globalContext().defaultGenerator(tensor.device());
}

at::Tensor generatorState(const at::Tensor& like)
{
    at::Generator generator = generatorFor(like);
    std::lock_guard<std::mutex> lock(generator.mutex());
    return generator.get_state();
}

void setGeneratorState(const at::Tensor& like, const at::Tensor& state)
{
    at::Generator generator = generatorFor(like);
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state);
}

at::Tensor detachedInput(const at::Tensor& input)
{
    return input.defined() ? input.detach().requires_grad_(input.requires_grad()) : input;
}

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction>
{
public:
    static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<BodyHolder> body,
                                 const at::Tensor& h, const at::Tensor& emb,
                                 const at::Tensor& context, at::TensorList parameters)
    {
        ctx->saved_data["body"] = c10::IValue::make_capsule(body);
        ctx->saved_data["rng"] = generatorState(h);
        ctx->saved_data["parameterCount"] = static_cast<int64_t>(parameters.size());
        ctx->save_for_backward({h, emb, context});
        ctx->saved_data["parameters"] = parameters.vec();

        at::NoGradGuard noGrad;
        return {body->body(h, emb, context)};
    }

    static variable_list backward(AutogradContext* ctx, variable_list gradOutputs)
    {
        const auto body =
            c10::static_intrusive_pointer_cast<BodyHolder>(ctx->saved_data["body"].toCapsule());
        const variable_list saved = ctx->get_saved_variables();
        const std::vector<at::Tensor> parameters = ctx->saved_data["parameters"].toTensorVector();
        const variable_list inputs = {detachedInput(saved[0]), detachedInput(saved[1]),
                                      detachedInput(saved[2])};

        // Recompute with the random state the forward pass had, then put the current one back.
        const at::Tensor current = generatorState(saved[0]);
        setGeneratorState(saved[0], ctx->saved_data["rng"].toTensor());
        at::Tensor output;
        {
            at::AutoGradMode enable(true);
            output = body->body(inputs[0], inputs[1], inputs[2]);
        }
        setGeneratorState(saved[0], current);

        // Gradients for everything that needs one; the rest stay undefined.
        variable_list targets;
        std::vector<size_t> slots;
        for (size_t i = 0; i < inputs.size(); ++i) {
            if (inputs[i].defined() && inputs[i].requires_grad()) {
                targets.push_back(inputs[i]);
                slots.push_back(1 + i);
            }
        }
        for (size_t i = 0; i < parameters.size(); ++i) {
            if (parameters[i].requires_grad()) {
                targets.push_back(parameters[i]);
                slots.push_back(4 + i);
            }
        }

        variable_list grads(4 + parameters.size());
        if (!targets.empty() && output.requires_grad()) {
            const variable_list computed =
                torch::autograd::grad({output}, targets, {gradOutputs[0]}, /*retain_graph=*/false,
                                      /*create_graph=*/false, /*allow_unused=*/true);
            for (size_t i = 0; i < computed.size(); ++i) {
                grads[slots[i]] = computed[i];
            }
        }
        return grads;
    }
};

} // namespace

at::Tensor checkpointBlock(BlockBody body, const at::Tensor& h, const at::Tensor& emb,
                           const at::Tensor& context, const torch::nn::Module& block,
                           const std::vector<const Hypernetwork*>& hypernetworks)
{
    std::vector<at::Tensor> parameters;
    for (const at::Tensor& parameter : block.parameters()) {
        if (parameter.requires_grad()) {
            parameters.push_back(parameter);
        }
    }
    for (const Hypernetwork* hypernetwork : hypernetworks) {
        for (const at::Tensor& parameter : hypernetwork->parameters()) {
            if (parameter.requires_grad()) {
                parameters.push_back(parameter);
            }
        }
    }

    const auto holder = c10::make_intrusive<BodyHolder>(std::move(body));
    return CheckpointFunction::apply(holder, h, emb, context, at::TensorList(parameters))[0];
}

} // namespace studio
