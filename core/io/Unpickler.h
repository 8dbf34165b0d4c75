#pragma once

// A restricted pickle reader for the files PyTorch writes (protocols 2 to 5, binary opcodes).
//
// It builds studio::py values and never runs code: a global is only a name. The handful of
// globals that torch files need are interpreted here (OrderedDict, the tensor rebuild functions,
// the storage classes); every other global is refused with an error that names it, or, when the
// caller allows it (checkpoints written by training frameworks), replaced by an inert Opaque
// value. Every length and index is checked against the input before use, so truncated or hostile
// input ends in studio::Error, never in a crash or a large allocation.

#include "core/io/PyValue.h"

#include <QString>

#include <functional>

namespace studio::py {

struct UnpickleOptions
{
    // Name used in error messages ("'model.ckpt', data.pkl").
    QString sourceName;

    // Resolves a persistent id (torch: ('storage', type, key, location, numel)) to a Storage.
    // Without it, a pickle with persistent ids is refused.
    std::function<ValuePtr(const ValuePtr& persistentId)> persistentLoad;

    // false: a global outside the torch set is an error. true: globals of the modules that
    // training frameworks put in checkpoints (pytorch_lightning, numpy scalars, ...) become
    // inert Opaque values (never called); any other global is still an error.
    bool allowUnknownGlobals = false;
};

// Reads one pickle from `data`. Throws studio::Error naming the source, the byte offset and what
// was wrong.
ValuePtr unpickle(const char* data, size_t size, const UnpickleOptions& options);

} // namespace studio::py
