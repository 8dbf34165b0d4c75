#pragma once

// The torch storage classes named in pickles ("torch.FloatStorage") and their element types.

#include <c10/core/ScalarType.h>

#include <QString>

#include <optional>

namespace studio::py {

// "FloatStorage" for float32, ...; throws studio::Error for a type torch files cannot hold.
QString storageClassName(c10::ScalarType type);

// The element type of a storage class, or nullopt for a name that is not a storage class.
// "UntypedStorage" (torch >= 2) is bytes.
std::optional<c10::ScalarType> storageClassType(const QString& className);

} // namespace studio::py
