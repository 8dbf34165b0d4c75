#pragma once

// qcustomplot.h spells Qt's keyword macros (`signals`, `foreach`), which QT_NO_KEYWORDS turns
// off for the whole project (they clash with LibTorch). They are lent to it here only.

#define signals Q_SIGNALS
#define foreach Q_FOREACH
#include <qcustomplot.h>
#undef foreach
#undef signals
