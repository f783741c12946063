import { expect } from 'chai';
import { type KlingSandbox, signKlingToken, startKlingSandbox } from '../../lib/sandbox/index.js';
import { call } from './helpers.js';

const OTHER = { accessKey: 'other-access-key', secretKey: 'other-secret-key-0123456789abcdef' };
const IMAGE = 'https://cdn.example.com/a.png';

describe('kling sandbox: voices, elements and their presets', () => {
  let sandbox: KlingSandbox;
  beforeEach(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual', accounts: [{ accessKey: 'main-access-key', secretKey: 'main-secret-key-0123456789abcdef' }, OTHER] });
  });
  afterEach(() => sandbox.close());

  const asOther = async () => `Bearer ${await signKlingToken(OTHER)}`;

  /** Creates a task at `path` on the first account, completes it, returns its result. */
  async function made(path: string, body: object): Promise<Record<string, unknown>> {
    const created = await call(sandbox, 'POST', path, { body });
    expect(created.json.code).to.equal(0);
    return sandbox.complete(String(created.json.data.task_id), { status: 'succeed' }).result ?? {};
  }

  it('pages the preset lists with their own limits, and answers 1201 past them', async () => {
    const voices = await call(sandbox, 'GET', '/v1/general/presets-voices?pageNum=1&pageSize=2');
    expect(voices.json.code).to.equal(0);
    expect(voices.json.data).to.have.length(2);
    expect(voices.json.data[0]).to.include({ task_status: 'succeed' });
    expect(voices.json.data[0].task_result.voices[0]).to.include({ owned_by: 'kling' });
    expect((await call(sandbox, 'GET', '/v1/general/presets-voices?pageNum=2&pageSize=2')).json.data).to.have.length(1);
    expect((await call(sandbox, 'GET', '/v1/general/presets-voices?pageSize=1000')).json.code).to.equal(0);
    const elements = await call(sandbox, 'GET', '/v1/general/advanced-presets-elements');
    expect(elements.json.data.map((t: { task_result: { elements: { element_name: string }[] } }) => t.task_result.elements[0]?.element_name)).to.include.members(['Grace', 'Armored Youth']);
    const tooMany = await call(sandbox, 'GET', '/v1/general/advanced-presets-elements?pageSize=501');
    expect([tooMany.status, tooMany.json.code]).to.deep.equal([400, 1201]);
    const posted = await call(sandbox, 'POST', '/v1/general/presets-voices', { body: {} });
    expect([posted.status, posted.json.code]).to.deep.equal([404, 1202]);
  });

  it("deletes a voice or element only for the account that made it, once; another account's is 1203", async () => {
    const voice = ((await made('/v1/general/custom-voices', { voice_name: 'v', voice_url: IMAGE })).voices as { voice_id: string }[])[0]?.voice_id;
    const foreign = await call(sandbox, 'POST', '/v1/general/delete-voices', { body: { voice_id: voice }, authorization: await asOther() });
    expect([foreign.status, foreign.json.code]).to.deep.equal([404, 1203]);
    const own = await call(sandbox, 'POST', '/v1/general/delete-voices', { body: { voice_id: voice } });
    expect(own.json.code).to.equal(0);
    expect(own.json.data).to.include({ task_status: 'succeed' });
    expect((await call(sandbox, 'POST', '/v1/general/delete-voices', { body: { voice_id: voice } })).json.code).to.equal(1203);

    const element = ((await made('/v1/general/advanced-custom-elements', { element_name: 'e', element_description: 'd', reference_type: 'image_refer', element_image_list: { frontal_image: IMAGE, refer_images: [{ image_url: IMAGE }] } })).elements as Record<string, unknown>[])[0] ?? {};
    expect(element).to.include({ element_name: 'e', reference_type: 'image_refer', owned_by: 'creator', status: 'succeed' });
    expect(element.element_id).to.be.a('number');
    expect((await call(sandbox, 'POST', '/v1/general/delete-elements', { body: { element_id: String(element.element_id) }, authorization: await asOther() })).json.code).to.equal(1203);
    expect((await call(sandbox, 'POST', '/v1/general/delete-advanced-elements', { body: { element_id: String(element.element_id) } })).json.code).to.equal(0);
    expect(element.status, 'the task result shows the element deleted').to.equal('deleted');
  });

  it('binds a named voice to an element (a preset as Kling-owned), clones one from a video, and answers the first element API at once', async () => {
    const preset = '829824295735410756';
    const bound = ((await made('/v1/general/advanced-custom-elements', { element_name: 'e', element_description: 'd', reference_type: 'image_refer', element_voice_id: preset })).elements as Record<string, unknown>[])[0];
    expect(bound?.element_voice_info).to.include({ voice_id: preset, owned_by: 'kling' });
    const cloned = ((await made('/v1/general/advanced-custom-elements', { element_name: 'e', element_description: 'd', reference_type: 'video_refer', element_video_list: { refer_videos: [{ video_url: 'https://cdn.example.com/v.mp4' }] } })).elements as Record<string, unknown>[])[0];
    expect(cloned?.element_voice_info).to.include({ owned_by: 'creator' });
    const first = await call(sandbox, 'POST', '/v1/general/custom-elements', { body: { element_name: 'Cup', element_description: 'a mug', element_frontal_image: IMAGE, element_refer_list: [{ image_url: IMAGE }] } });
    expect(first.json.data).to.include({ task_status: 'succeed' });
    const id = String(first.json.data.task_result.elements[0].element_id);
    expect(sandbox.tasks.all().filter((t) => t.path === '/v1/general/custom-elements')).to.deep.equal([]);
    expect((await call(sandbox, 'POST', '/v1/general/delete-elements', { body: { element_id: id } })).json.code).to.equal(0);
  });
});
