#pragma once

// Named tensors from a checkpoint file, whatever its format: a memory-mapped .safetensors file
// or a torch .ckpt archive (its `state_dict`, read through the restricted unpickler). Model code
// loads its weights through this interface and never cares which format it came from.

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <QString>
#include <QStringList>

#include <memory>
#include <vector>

namespace torch::nn {
class Module;
}

namespace studio::io {

class TensorSource
{
public:
    virtual ~TensorSource() = default;

    // The file, for error messages ("'model.ckpt'").
    virtual QString sourceName() const = 0;
    virtual QStringList names() const = 0;
    virtual bool contains(const QString& name) const = 0;
    virtual std::vector<int64_t> shape(const QString& name) const = 0;
    // The tensor on the CPU in its stored dtype; may share memory with the file mapping.
    virtual at::Tensor tensor(const QString& name) const = 0;
};

// Opens `path` by its extension (.safetensors, .ckpt, .pt, .pth, .bin). Throws studio::Error
// naming the file when it cannot be read or holds no tensors.
std::unique_ptr<TensorSource> openTensorSource(const QString& path);

// Copies `prefix + name` for every parameter and buffer of `module` (named as LibTorch names
// them, which mirrors the ldm key paths) into the module, converted to the module's dtype.
// Throws studio::Error naming the key when one is missing or has the wrong shape. Returns the
// keys under `prefix` that the module did not use.
QStringList loadModuleWeights(torch::nn::Module& module, const TensorSource& source,
                              const QString& prefix);

} // namespace studio::io
