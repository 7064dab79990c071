// Entry point of every page but Live (which has its own bundle with the detection core).
import { initAnalyse } from './analyse.ts';
import { initEventDetail } from './event-detail.ts';
import { initEvents } from './events.ts';
import { initFleet } from './fleet.ts';
import { initLogin } from './login.ts';
import { initModels } from './models.ts';
import { initSensor } from './sensor.ts';
import { initShell } from './shell.ts';

const page = document.body.dataset.page;
const main = document.getElementById('main');
if (page === 'login') initLogin();
else if (main) {
  initShell();
  if (page === 'events') void initEvents(main);
  else if (page === 'event') void initEventDetail(main);
  else if (page === 'fleet') void initFleet(main);
  else if (page === 'sensor') void initSensor(main);
  else if (page === 'analyse') initAnalyse(main);
  else if (page === 'models') void initModels(main);
}
