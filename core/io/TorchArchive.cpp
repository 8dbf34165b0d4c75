#include "core/io/TorchArchive.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/io/AtomicFile.h"
#include "core/io/Pickler.h"
#include "core/io/StorageTypes.h"
#include "core/io/Unpickler.h"
#include "core/io/ZipArchive.h"

#include <ATen/ATen.h>

#include <QBuffer>
#include <QDir>
#include <QFile>
#include <QFileInfo>

#include <cstring>
#include <limits>
#include <map>
#include <memory>

namespace studio::io {

namespace {

// Turns persistent ids into storages backed by the archive's records, each record once.
class StorageLoader
{
public:
    StorageLoader(const ZipReader& zip, const TorchReadOptions& options,
                  std::shared_ptr<void> keepAlive)
        : m_zip(zip), m_options(options), m_keepAlive(std::move(keepAlive))
    {
    }

    py::ValuePtr load(const py::ValuePtr& id);

private:
    at::Tensor makeStorage(const char* data, c10::ScalarType type, int64_t numel) const;

    const ZipReader& m_zip;
    const TorchReadOptions& m_options;
    std::shared_ptr<void> m_keepAlive; // null: copy the data out
    std::map<QString, py::ValuePtr> m_loaded;
};

py::ValuePtr StorageLoader::load(const py::ValuePtr& id)
{
    // ('storage', torch.<Type>Storage, key, location, numel)
    const bool wellFormed = id->is(py::Kind::Tuple) && id->items().size() == 5 &&
                            id->items()[0]->is(py::Kind::String) &&
                            id->items()[0]->toStr() == QLatin1String("storage") &&
                            id->items()[1]->is(py::Kind::Global) &&
                            id->items()[2]->is(py::Kind::String) &&
                            id->items()[4]->is(py::Kind::Int);
    if (!wellFormed) {
        throw Error(QStringLiteral("a tensor refers to its data in an unknown way"));
    }
    const QString key = id->items()[2]->toStr();
    const auto cached = m_loaded.find(key);
    if (cached != m_loaded.end()) {
        return cached->second;
    }

    const std::optional<c10::ScalarType> type = py::storageClassType(id->items()[1]->name());
    const int64_t numel = id->items()[4]->toInt();
    const ZipReader::Record* record = m_zip.find(QStringLiteral("data/") + key);
    if (!type || !record) {
        throw Error(QStringLiteral("the data of storage '%1' is missing").arg(key));
    }
    const auto elementSize = static_cast<int64_t>(c10::elementSize(*type));
    if (numel < 0 || numel > static_cast<int64_t>(record->size) / elementSize) {
        throw Error(QStringLiteral("storage '%1' claims %2 values but its record holds %3 bytes")
                        .arg(key)
                        .arg(numel)
                        .arg(record->size));
    }

    const char* data = m_zip.recordData(*record, m_options.verifyChecksums);
    py::ValuePtr storage = py::Value::storage(makeStorage(data, *type, numel));
    m_loaded[key] = storage;
    return storage;
}

at::Tensor StorageLoader::makeStorage(const char* data, c10::ScalarType type, int64_t numel) const
{
    const auto options = at::TensorOptions().dtype(type);
    const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(type);
    const bool aligned = reinterpret_cast<uintptr_t>(data) % c10::elementSize(type) == 0;
    if (m_keepAlive && aligned) {
        std::shared_ptr<void> owner = m_keepAlive;
        return at::from_blob(
            const_cast<char*>(data), {numel}, [owner](void*) {}, options);
    }
    at::Tensor storage = at::empty({numel}, options);
    std::memcpy(storage.data_ptr(), data, bytes);
    return storage;
}

py::ValuePtr readArchive(const char* data, size_t size, const QString& sourceName,
                         const TorchReadOptions& options, std::shared_ptr<void> keepAlive)
{
    const ZipReader zip(data, size, sourceName);
    const ZipReader::Record* pickleRecord = zip.find(QStringLiteral("data.pkl"));
    if (!pickleRecord) {
        throw Error(
            QStringLiteral("%1: not a torch file (the archive has no data.pkl)").arg(sourceName));
    }

    StorageLoader storages(zip, options, std::move(keepAlive));
    py::UnpickleOptions pickleOptions;
    pickleOptions.sourceName = sourceName;
    pickleOptions.allowUnknownGlobals = options.allowUnknownGlobals;
    pickleOptions.persistentLoad = [&storages, &sourceName](const py::ValuePtr& id) {
        return withContext(sourceName, [&] { return storages.load(id); });
    };

    const char* pickle = zip.recordData(*pickleRecord, /*verifyChecksum=*/true);
    return py::unpickle(pickle, pickleRecord->size, pickleOptions);
}

} // namespace

py::ValuePtr readTorchFile(const QString& path, const TorchReadOptions& options)
{
    const QString sourceName = QStringLiteral("'%1'").arg(QDir::toNativeSeparators(path));
    auto file = std::make_shared<QFile>(path);
    if (!file->open(QIODevice::ReadOnly)) {
        throw Error(QStringLiteral("cannot open %1: %2").arg(sourceName, file->errorString()));
    }
    const qint64 size = file->size();
    if (size == 0) {
        throw Error(QStringLiteral("%1 is empty").arg(sourceName));
    }

    // Copy-on-write, so a tensor that is later changed in place never writes to the file.
    uchar* mapped = file->map(0, size, QFileDevice::MapPrivateOption);
    if (!mapped) {
        throw Error(QStringLiteral("cannot map %1: %2").arg(sourceName, file->errorString()));
    }
    qCDebug(lcIo) << "reading torch file" << path << size << "bytes";
    return readArchive(reinterpret_cast<const char*>(mapped), static_cast<size_t>(size), sourceName,
                       options, file);
}

py::ValuePtr readTorchBytes(const QByteArray& bytes, const QString& sourceName,
                            const TorchReadOptions& options)
{
    return readArchive(bytes.constData(), static_cast<size_t>(bytes.size()), sourceName, options,
                       nullptr);
}

namespace {

void writeArchive(QIODevice& device, const py::ValuePtr& root, const QString& archiveName)
{
    const py::Pickled pickled = py::pickle(root);

    // Record order as torch.save (>= 2.1) writes it.
    ZipWriter zip(device, archiveName);
    zip.addRecord(QStringLiteral("data.pkl"), pickled.pickle);
    zip.addRecord(QStringLiteral("byteorder"), QByteArrayLiteral("little"));
    for (size_t key = 0; key < pickled.storages.size(); ++key) {
        const at::Tensor& storage = pickled.storages[key];
        zip.addRecord(QStringLiteral("data/%1").arg(key),
                      static_cast<const char*>(storage.data_ptr()), storage.nbytes());
    }
    zip.addRecord(QStringLiteral("version"), QByteArrayLiteral("3\n"));
    zip.finish();
}

} // namespace

QByteArray serializeTorch(const py::ValuePtr& root, const QString& archiveName)
{
    QByteArray bytes;
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly);
    writeArchive(buffer, root, archiveName);
    return bytes;
}

void writeTorchFile(const QString& path, const py::ValuePtr& root)
{
    const QString archiveName = QFileInfo(path).completeBaseName();
    writeFileAtomically(path, [&](QIODevice& device) {
        writeArchive(device, root, archiveName.isEmpty() ? QStringLiteral("archive") : archiveName);
    });
    qCDebug(lcIo) << "wrote torch file" << path;
}

} // namespace studio::io
