#include "core/io/TensorSource.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/io/SafeTensors.h"
#include "core/io/TorchArchive.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <QDir>
#include <QFileInfo>

#include <map>
#include <set>

namespace studio::io {

namespace {

QString quoted(const QString& path)
{
    return QStringLiteral("'%1'").arg(QDir::toNativeSeparators(path));
}

class SafeTensorsSource final : public TensorSource
{
public:
    explicit SafeTensorsSource(const QString& path)
        : m_file(SafeTensorsFile::open(path)), m_name(quoted(path))
    {
    }

    QString sourceName() const override { return m_name; }
    QStringList names() const override { return m_file.names(); }
    bool contains(const QString& name) const override { return m_file.contains(name); }
    std::vector<int64_t> shape(const QString& name) const override
    {
        return m_file.info(name).shape;
    }
    at::Tensor tensor(const QString& name) const override { return m_file.tensor(name); }

private:
    SafeTensorsFile m_file;
    QString m_name;
};

// A torch .ckpt: the tensors of its `state_dict` (or of the file itself when it is a bare state
// dict). Training frameworks' objects in the file are skipped, never built.
class CheckpointSource final : public TensorSource
{
public:
    explicit CheckpointSource(const QString& path) : m_name(quoted(path))
    {
        TorchReadOptions options;
        options.allowUnknownGlobals = true;
        options.verifyChecksums = false; // the pickle is still verified; tensors are large
        const py::ValuePtr root = readTorchFile(path, options);
        collect(root);
        if (m_tensors.empty()) {
            throw Error(QStringLiteral("%1 holds no tensors (is it a Stable Diffusion "
                                       "checkpoint?)")
                            .arg(m_name));
        }
    }

    QString sourceName() const override { return m_name; }
    QStringList names() const override { return m_order; }
    bool contains(const QString& name) const override { return m_tensors.count(name) > 0; }
    std::vector<int64_t> shape(const QString& name) const override
    {
        return tensor(name).sizes().vec();
    }
    at::Tensor tensor(const QString& name) const override
    {
        const auto found = m_tensors.find(name);
        if (found == m_tensors.end()) {
            throw Error(QStringLiteral("%1 has no tensor '%2'").arg(m_name, name));
        }
        return found->second;
    }

private:
    void collect(const py::ValuePtr& root)
    {
        if (!root->is(py::Kind::Dict)) {
            throw Error(QStringLiteral("%1 is not a checkpoint: it holds a %2")
                            .arg(m_name, root->typeName()));
        }
        const py::ValuePtr stateDict = root->get(QStringLiteral("state_dict"));
        const py::ValuePtr& tensors = stateDict && stateDict->is(py::Kind::Dict) ? stateDict : root;
        for (const py::DictEntry& entry : tensors->entries()) {
            if (entry.key->is(py::Kind::String) && entry.value->is(py::Kind::Tensor)) {
                m_order << entry.key->toStr();
                m_tensors[entry.key->toStr()] = entry.value->toTensor();
            }
        }
    }

    QString m_name;
    QStringList m_order;
    std::map<QString, at::Tensor> m_tensors;
};

QString shapeText(c10::IntArrayRef shape)
{
    return QString::fromStdString(c10::str(shape));
}

} // namespace

std::unique_ptr<TensorSource> openTensorSource(const QString& path)
{
    const QString suffix = QFileInfo(path).suffix().toLower();
    if (suffix == QLatin1String("safetensors")) {
        return std::make_unique<SafeTensorsSource>(path);
    }
    if (suffix == QLatin1String("ckpt") || suffix == QLatin1String("pt") ||
        suffix == QLatin1String("pth") || suffix == QLatin1String("bin")) {
        return std::make_unique<CheckpointSource>(path);
    }
    throw Error(QStringLiteral("%1: unknown checkpoint format '.%2'; use a .safetensors or .ckpt "
                               "file")
                    .arg(quoted(path), suffix));
}

QStringList loadModuleWeights(torch::nn::Module& module, const TensorSource& source,
                              const QString& prefix)
{
    std::set<QString> used;
    torch::NoGradGuard noGrad;
    auto load = [&](const std::string& name, at::Tensor& target) {
        const QString key = prefix + QString::fromStdString(name);
        if (!source.contains(key)) {
            throw Error(QStringLiteral("%1 has no tensor '%2', which this model needs (is it a "
                                       "checkpoint of another architecture?)")
                            .arg(source.sourceName(), key));
        }
        const at::Tensor value = source.tensor(key);
        if (value.sizes() != target.sizes()) {
            throw Error(QStringLiteral("%1: '%2' has shape %3, the model needs %4 (wrong config "
                                       "for this checkpoint?)")
                            .arg(source.sourceName(), key, shapeText(value.sizes()),
                                 shapeText(target.sizes())));
        }
        target.copy_(value);
        used.insert(key);
    };

    for (auto& item : module.named_parameters(/*recurse=*/true)) {
        load(item.key(), item.value());
    }
    for (auto& item : module.named_buffers(/*recurse=*/true)) {
        load(item.key(), item.value());
    }

    QStringList unused;
    for (const QString& name : source.names()) {
        if (name.startsWith(prefix) && used.count(name) == 0) {
            unused << name;
        }
    }
    if (!unused.isEmpty()) {
        qCDebug(lcIo) << source.sourceName() << "has" << unused.size() << "unused keys under"
                      << prefix;
    }
    return unused;
}

} // namespace studio::io
