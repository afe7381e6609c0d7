// The generated schema. Included where the messages are needed; the header is
// modest in size, so there is no forward-declaration dance.
#pragma once

#include "engine/proto/coco.pb.h"
