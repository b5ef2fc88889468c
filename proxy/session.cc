#include "proxy/session.h"

#include <vector>

namespace turnout::proxy {

void SessionSet::CloseAll() {
  // Close() may end a session synchronously and remove it from the set.
  std::vector<Session*> copy(sessions_.begin(), sessions_.end());
  for (Session* s : copy) s->Close();
}

void SessionSet::RequestDrainAll() {
  std::vector<Session*> copy(sessions_.begin(), sessions_.end());
  for (Session* s : copy) s->RequestDrain();
}

}  // namespace turnout::proxy
