#include "core/Error.h"

namespace studio {

Error::Error(const QString& message) : std::runtime_error(message.toStdString()) {}

} // namespace studio
