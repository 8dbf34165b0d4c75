#include "FuzzTargets.h"

#include "core/Error.h"
#include "core/io/SafeTensors.h"
#include "core/io/TorchArchive.h"
#include "core/io/Unpickler.h"

#include <ATen/ATen.h>

#include <QCoreApplication>
#include <QDir>
#include <QFile>

namespace studio::fuzz {

namespace {

// A pickle may refer to storages; give it one small float storage whatever it asks for, so the
// tensor-rebuilding code is reached too.
py::ValuePtr fakeStorage(const py::ValuePtr& /*persistentId*/)
{
    return py::Value::storage(at::zeros({16}));
}

QString scratchFile()
{
    static const QString path = QDir::temp().filePath(
        QStringLiteral("hnstudio-fuzz-%1.safetensors").arg(QCoreApplication::applicationPid()));
    return path;
}

} // namespace

int unpicklerTarget(const uint8_t* data, size_t size)
{
    py::UnpickleOptions options;
    options.sourceName = QStringLiteral("fuzz");
    options.persistentLoad = fakeStorage;
    options.allowUnknownGlobals = size % 2 == 0; // both policies
    try {
        py::unpickle(reinterpret_cast<const char*>(data), size, options);
    } catch (const Error&) {
    }
    return 0;
}

int torchArchiveTarget(const uint8_t* data, size_t size)
{
    io::TorchReadOptions options;
    options.verifyChecksums = false; // reach the parsers behind the checksum
    try {
        io::readTorchBytes(
            QByteArray(reinterpret_cast<const char*>(data), static_cast<qsizetype>(size)),
            QStringLiteral("fuzz"), options);
    } catch (const Error&) {
    }
    return 0;
}

int safeTensorsTarget(const uint8_t* data, size_t size)
{
    // The reader maps files, so the input goes through a scratch file.
    QFile file(scratchFile());
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate)) {
        return 0;
    }
    file.write(reinterpret_cast<const char*>(data), static_cast<qint64>(size));
    file.close();
    try {
        const io::SafeTensorsFile tensors = io::SafeTensorsFile::open(scratchFile());
        for (const QString& name : tensors.names()) {
            tensors.tensor(name);
        }
    } catch (const Error&) {
    }
    return 0;
}

} // namespace studio::fuzz
