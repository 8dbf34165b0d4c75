#pragma once

// Writes studio::py values as a protocol-2 pickle, the way torch.save does: dicts and lists in
// batches, OrderedDicts through `collections.OrderedDict` with their attributes set by BUILD,
// tensors through `torch._utils._rebuild_tensor_v2` with a persistent id per storage.

#include "core/io/PyValue.h"

#include <QByteArray>

#include <vector>

namespace studio::py {

struct Pickled
{
    QByteArray pickle;
    // Contiguous CPU tensors, one per storage: storage key i is `storages[i]`, saved as data/i.
    std::vector<at::Tensor> storages;
};

// Throws studio::Error for values that have no pickled form here (Global, Opaque, Storage).
Pickled pickle(const ValuePtr& root);

} // namespace studio::py
