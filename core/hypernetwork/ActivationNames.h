#pragma once

// The activation names a hypernetwork can be created with, without the torch modules behind
// them (core/hypernetwork/Activation.h), so that forms in ui/ can offer them.

#include <QStringList>

namespace studio {

// Names offered when creating a hypernetwork (the webui's list, "linear" first).
QStringList activationNames();

} // namespace studio
