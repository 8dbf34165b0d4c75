#include "core/io/StorageTypes.h"

#include "core/Error.h"

#include <array>
#include <utility>

namespace studio::py {

namespace {

constexpr std::array<std::pair<const char*, c10::ScalarType>, 10> kStorageClasses = {{
    {"FloatStorage", c10::kFloat},
    {"DoubleStorage", c10::kDouble},
    {"HalfStorage", c10::kHalf},
    {"BFloat16Storage", c10::kBFloat16},
    {"LongStorage", c10::kLong},
    {"IntStorage", c10::kInt},
    {"ShortStorage", c10::kShort},
    {"CharStorage", c10::kChar},
    {"ByteStorage", c10::kByte},
    {"BoolStorage", c10::kBool},
}};

} // namespace

QString storageClassName(c10::ScalarType type)
{
    for (const auto& [name, classType] : kStorageClasses) {
        if (classType == type) {
            return QString::fromLatin1(name);
        }
    }
    throw Error(QStringLiteral("cannot save tensors of type %1 in a torch file")
                    .arg(QString::fromLatin1(c10::toString(type))));
}

std::optional<c10::ScalarType> storageClassType(const QString& className)
{
    if (className == QLatin1String("UntypedStorage")) {
        return c10::kByte;
    }
    for (const auto& [name, classType] : kStorageClasses) {
        if (className == QLatin1String(name)) {
            return classType;
        }
    }
    return std::nullopt;
}

} // namespace studio::py
