#pragma once

// torch.save files (.pt, .ckpt, .optim): a zip archive holding data.pkl, one record per tensor
// storage, and a version record. Reading goes through the restricted unpickler, so a file is
// only ever data; writing produces what torch.save writes, loadable by torch.load (also with
// weights_only=True) and therefore by the webui.

#include "core/io/PyValue.h"

#include <QByteArray>
#include <QString>

namespace studio::io {

struct TorchReadOptions
{
    // Skip (instead of refusing) the objects training frameworks leave in checkpoints, such as
    // Lightning callbacks; they are never built. Other foreign globals are still refused.
    bool allowUnknownGlobals = false;
    // Check every record's CRC-32. Costs one pass over the data.
    bool verifyChecksums = true;
};

// Reads a torch file. The file is memory-mapped (copy-on-write); tensors may point into the
// mapping, which stays alive as long as they do. Throws studio::Error naming the file.
py::ValuePtr readTorchFile(const QString& path, const TorchReadOptions& options = {});

// The same from bytes in memory; tensors own their data. `sourceName` names it in errors.
py::ValuePtr readTorchBytes(const QByteArray& bytes, const QString& sourceName,
                            const TorchReadOptions& options = {});

// The archive for `root` with the records under `archiveName/`.
QByteArray serializeTorch(const py::ValuePtr& root, const QString& archiveName);

// Writes `root` atomically to `path`; the archive folder is the file's base name, as torch.save.
void writeTorchFile(const QString& path, const py::ValuePtr& root);

} // namespace studio::io
