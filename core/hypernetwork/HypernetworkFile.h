#pragma once

// The webui's hypernetwork file, NAME.pt (spec hypernetworks.md section 2): a torch.save'd dict
// with one int key per width holding a tuple of two state dicts (k, v), and metadata keys.
// Legacy files (linear1/linear2, missing keys) load with the webui's defaults; the extension's
// files (skip_connection, upsample_linear) load with their layout. Unknown keys are kept.

#include "core/hypernetwork/Hypernetwork.h"
#include "core/io/PyValue.h"

#include <QString>

namespace studio {

// Throws studio::Error naming the file and the key or field that is wrong.
Hypernetwork loadHypernetwork(const QString& path);

// Writes atomically. The `name` key is config().name.
void saveHypernetwork(const Hypernetwork& hypernetwork, const QString& path);

// The pickled form, for tests and tools. `sourceName` names the data in errors.
Hypernetwork hypernetworkFromPickle(const py::ValuePtr& root, const QString& sourceName,
                                    const QString& defaultName);
py::ValuePtr hypernetworkToPickle(const Hypernetwork& hypernetwork);

// The webui's shorthash: the first 10 hex digits of the file's SHA-256.
QString fileShortHash(const QString& path);

// The webui's legacy model_hash: the first 8 hex digits of the SHA-256 of the 64 KiB at 1 MiB.
QString fileLegacyHash(const QString& path);

} // namespace studio
