#include "core/Logging.h"

namespace studio {

Q_LOGGING_CATEGORY(lcIo, "studio.core.io", QtWarningMsg)
Q_LOGGING_CATEGORY(lcHypernetwork, "studio.core.hypernetwork", QtWarningMsg)
Q_LOGGING_CATEGORY(lcTrain, "studio.core.train", QtWarningMsg)

} // namespace studio
