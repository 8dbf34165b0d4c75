#include "ui/CreatePage.h"

#include <QLabel>
#include <QVBoxLayout>

namespace studio::ui {

CreatePage::CreatePage(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(new QLabel(QStringLiteral("CreatePage"), this));
}

} // namespace studio::ui
