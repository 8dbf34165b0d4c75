#pragma once

// Logging categories of the engine, one per area. All are quiet by default (warnings only);
// enable one with QT_LOGGING_RULES="studio.core.io.debug=true".

#include <QLoggingCategory>

namespace studio {

Q_DECLARE_LOGGING_CATEGORY(lcIo)
Q_DECLARE_LOGGING_CATEGORY(lcHypernetwork)
Q_DECLARE_LOGGING_CATEGORY(lcTrain)

} // namespace studio
