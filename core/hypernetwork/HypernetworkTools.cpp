// The create and summary half of HypernetworkTools.h; merging lives in HypernetworkMerge.cpp.

#include "core/hypernetwork/HypernetworkTools.h"

#include "core/Error.h"
#include "core/hypernetwork/Activation.h"
#include "core/hypernetwork/HypernetworkFile.h"

#include <QDir>
#include <QFileInfo>

namespace studio {

namespace {

// The tensors (element counts, in state-dict order) and submodules of one module (k or v),
// counted the way HypernetworkModule builds it (spec hypernetworks.md 1.3; the extension's
// ResBlock for skip connections).
struct ModuleShape
{
    std::vector<int64_t> tensors;
    int submodules = 2; // the module itself and its Sequential `linear`: _metadata entries
};

void addLinear(ModuleShape& shape, int64_t in, int64_t out, bool bias = true)
{
    shape.tensors.push_back(in * out);
    if (bias) {
        shape.tensors.push_back(out);
    }
    shape.submodules += 1;
}

void addLayerNorm(ModuleShape& shape, int64_t width)
{
    shape.tensors.insert(shape.tensors.end(), {width, width});
    shape.submodules += 1;
}

// Of all activations only PReLU has a parameter, its single slope.
void addActivation(ModuleShape& shape, const HypernetworkConfig& config)
{
    shape.submodules += 1;
    if (config.activation && parseActivation(*config.activation) == ActivationKind::PReLU) {
        shape.tensors.push_back(1);
    }
}

void addDropout(ModuleShape& shape, double probability)
{
    shape.submodules += probability > 0.0 ? 1 : 0;
}

void addStandardStage(ModuleShape& shape, const HypernetworkConfig& config, size_t i,
                      const std::vector<int>& widths)
{
    addLinear(shape, widths[i], widths[i + 1]);
    // The activation follows every Linear but the last unless activate_output.
    const bool isLast = i + 2 == widths.size();
    const bool hasActivation = config.activation && *config.activation != QLatin1String("linear");
    if (hasActivation && (!isLast || config.activateOutput)) {
        addActivation(shape, config);
    }
    if (config.layerNorm) {
        addLayerNorm(shape, widths[i + 1]);
    }
    addDropout(shape, config.dropoutStructure[i + 1]);
}

void addResidualStage(ModuleShape& shape, const HypernetworkConfig& config, size_t i,
                      const std::vector<int>& widths)
{
    shape.submodules += 2; // the ResBlock and its Sequential
    addLinear(shape, widths[i], widths[i + 1]);
    if (config.layerNorm) {
        addLayerNorm(shape, widths[i + 1]);
    }
    addDropout(shape, config.dropoutStructure[i + 1]);
    addActivation(shape, config); // every ResBlock ends in one, the last one included
    if (config.upsampleLinear && *config.upsampleLinear == QLatin1String("Linear")) {
        addLinear(shape, widths[i], widths[i + 1], /*bias=*/false);
    }
}

ModuleShape moduleShape(const HypernetworkConfig& config, int size)
{
    const std::vector<int> widths = config.layerWidths(size);
    ModuleShape shape;
    for (size_t i = 0; i + 1 < widths.size(); ++i) {
        if (config.skipConnection) {
            addResidualStage(shape, config, i, widths);
        } else {
            addStandardStage(shape, config, i, widths);
        }
    }
    return shape;
}

// Bytes of data.pkl, fitted to files this program writes (within about 150 bytes): the metadata
// keys, then per module its OrderedDict, per submodule a _metadata entry, per tensor its key,
// the _rebuild_tensor_v2 call, storage id, shape and stride. The residual layout's keys are
// longer ("linear.0.linear.0.weight", "linear.0.upsample_layer.weight").
int64_t estimatePickleBytes(const HypernetworkConfig& config, int64_t modules, int64_t submodules,
                            int64_t tensors)
{
    if (!config.skipConnection) {
        const int64_t base = config.writeExtensionKeys ? 410 : 350;
        return base + 45 * modules + 35 * submodules + 77 * tensors;
    }
    const bool upsample =
        config.upsampleLinear && *config.upsampleLinear == QLatin1String("Linear");
    const auto blocks = modules * static_cast<int64_t>(config.layerStructure.size() - 1);
    return 410 + 45 * modules + 38 * submodules + 84 * tensors + (upsample ? 14 * blocks : 0);
}

// Replays core/io/ZipArchive.cpp's ZipWriter: each record is a local header (30 bytes), its
// name, a padding extra field that starts the data on a 64-byte boundary, and the data; the
// central directory repeats each name in 46 bytes; the end record is 22 bytes.
class ZipSizer
{
public:
    explicit ZipSizer(const QString& folder) : m_folder(folder.toUtf8().size()) {}

    void add(int64_t nameBytes, int64_t dataBytes)
    {
        const int64_t name = m_folder + 1 + nameBytes;
        const int64_t headerEnd = m_position + 30 + name + 4;
        m_position = headerEnd + (64 - headerEnd % 64) % 64 + dataBytes;
        m_directory += 46 + name;
    }

    int64_t total() const { return m_position + m_directory + 22; }

private:
    int64_t m_folder;
    int64_t m_position = 0;
    int64_t m_directory = 0;
};

} // namespace

int64_t countParameters(const HypernetworkConfig& config)
{
    int64_t count = 0;
    for (int size : config.sizes) {
        for (int64_t numel : moduleShape(config, size).tensors) {
            count += 2 * numel; // the k and the v module
        }
    }
    return count;
}

int64_t estimateFileBytes(const HypernetworkConfig& config)
{
    std::vector<int64_t> tensors; // storage order: widths in order, k before v
    int64_t submodules = 0;
    for (int size : config.sizes) {
        const ModuleShape shape = moduleShape(config, size);
        for (int copy = 0; copy < 2; ++copy) {
            tensors.insert(tensors.end(), shape.tensors.begin(), shape.tensors.end());
            submodules += shape.submodules;
        }
    }
    const auto modules = static_cast<int64_t>(2 * config.sizes.size());
    const auto tensorCount = static_cast<int64_t>(tensors.size());

    // The archive's folder is the file's base name: NAME for NAME.pt ("archive" if empty).
    ZipSizer zip(config.name.isEmpty() ? QStringLiteral("archive") : config.name);
    zip.add(8, estimatePickleBytes(config, modules, submodules, tensorCount)); // data.pkl
    zip.add(9, 6);                                                             // byteorder
    for (int64_t key = 0; key < tensorCount; ++key) {
        zip.add(5 + QString::number(key).size(), 4 * tensors[key]); // data/KEY, float32
    }
    zip.add(7, 2); // version
    return zip.total();
}

HypernetworkSummary summarizeSavedHypernetwork(const Hypernetwork& hypernetwork,
                                               const QString& path)
{
    HypernetworkSummary summary;
    summary.path = path;
    summary.config = hypernetwork.config();
    summary.parameterCount = hypernetwork.parameterCount();
    summary.fileBytes = QFileInfo(path).size();
    summary.shortHash = fileShortHash(path);
    return summary;
}

HypernetworkSummary createHypernetworkFile(const HypernetworkConfig& config, const QString& path)
{
    validate(config, /*forCreation=*/true);
    const Hypernetwork hypernetwork = Hypernetwork::create(config);
    saveHypernetwork(hypernetwork, path);

    return summarizeSavedHypernetwork(hypernetwork, path);
}

HypernetworkSummary summarizeHypernetworkFile(const QString& path)
{
    if (!QFileInfo(path).isFile()) {
        throw Error(QStringLiteral("'%1' does not exist or is not a file; choose a hypernetwork "
                                   ".pt file")
                        .arg(QDir::toNativeSeparators(path)));
    }
    const Hypernetwork hypernetwork = loadHypernetwork(path);

    return summarizeSavedHypernetwork(hypernetwork, path);
}

} // namespace studio
